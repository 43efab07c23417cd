"""Every model family; importing this package registers them all."""

from cnnzoo.models import resnet  # noqa: F401
from cnnzoo.models import resnet_d  # noqa: F401
from cnnzoo.models import resnetv2  # noqa: F401
from cnnzoo.models import convnext  # noqa: F401
from cnnzoo.models import mobilenet  # noqa: F401
from cnnzoo.models import efficientnet  # noqa: F401
from cnnzoo.models import shufflenet  # noqa: F401
from cnnzoo.models import densenet  # noqa: F401
from cnnzoo.models import inception, inception_resnet  # noqa: F401
from cnnzoo.models import regnet  # noqa: F401
from cnnzoo.models import mnasnet  # noqa: F401
from cnnzoo.models import vgg  # noqa: F401
from cnnzoo.models import squeezenet  # noqa: F401
from cnnzoo.models import mobilenetv1  # noqa: F401
from cnnzoo.models import lenet  # noqa: F401
