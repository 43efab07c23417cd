"""Every model family; importing this package registers them all."""

from . import resnet  # noqa: F401
from . import resnetv2  # noqa: F401
from . import convnext  # noqa: F401
from . import mobilenet  # noqa: F401
from . import efficientnet  # noqa: F401
from . import shufflenet  # noqa: F401
from . import densenet  # noqa: F401
from . import inception, inception_resnet  # noqa: F401
from . import vgg  # noqa: F401
from . import squeezenet  # noqa: F401
from . import mobilenetv1  # noqa: F401
from . import lenet  # noqa: F401
