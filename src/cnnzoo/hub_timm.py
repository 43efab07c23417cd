"""timm 1.0.31's pretrained tags for the architectures of the zoo whose files load into the
zoo's keys as they are, as timm names them (`resnet50.a1_in1k`): per tag its published
ImageNet-1k top-1 at its input size (timm's results-imagenet.csv), licence, eval transform
(input size, crop_pct, interpolation, normalisation) and the file timm's config names.

A file named `<name>-<hex>.pth` carries the start of its SHA-256 (checked as torch.hub
checks it). An empty URL means timm names only its Hugging Face copy
(`timm/<model>.<tag>`, `model.safetensors`); Hugging Face lists each file's SHA-256, and
`HF_SHA256` holds those known here. For the others no SHA-256 is known: their entries say
so, and the first download's digest is recorded and checked from then on.

Left out: `resnet50.bamboo` (timm publishes neither a licence nor an ImageNet-1k top-1 for it).
The first tag of a model with no torchvision weights is its default (what its ModelCfg
describes).
"""

from __future__ import annotations

URL_PREFIXES = {
    "timm-gh:": "https://github.com/huggingface/pytorch-image-models/releases/download/",
    "timm-gh-old:": "https://github.com/rwightman/pytorch-image-models/releases/download/",
    "gluon-gh:": "https://github.com/rwightman/pytorch-pretrained-gluonresnet/releases/download/",
    "tv:": "https://download.pytorch.org/models/",
    "fb:": "https://dl.fbaipublicfiles.com/semiweaksupervision/model_files/",
}

# the SHA-256 Hugging Face lists for a tag's model.safetensors
HF_SHA256 = {
    "inception_v4.tf_in1k": "a756a086851c8d5a8de135ec15c76b90ea56cb5aef450e3299107e659e725bb1",
    "inception_resnet_v2.tf_in1k": (
        "dbea26b13a5fc8351919fed6a94222c0577ce324b2765fd081a798f837ca9d72"
    ),
}

# model: [(tag, top-1, licence, input size, crop_pct, interpolation, mean/std, URL or "")]
# fmt: off
TIMM_TAGS: dict[str, list[tuple[str, float, str, int, float, str, str, str]]] = {
    "resnet18": [
        ("a1_in1k", 71.504, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnet18_a1_0-d63eafa0.pth"),
        ("a2_in1k", 70.634, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnet18_a2_0-b61bd467.pth"),
        ("a3_in1k", 65.67, "apache-2.0", 160, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnet18_a3_0-40c531c8.pth"),
        ("fb_ssl_yfcc100m_ft_in1k", 72.636, "cc-by-nc-4.0", 224, 0.875, "bilinear", "imagenet", "fb:semi_supervised_resnet18-d92f0530.pth"),
        ("fb_swsl_ig1b_ft_in1k", 73.286, "cc-by-nc-4.0", 224, 0.875, "bilinear", "imagenet", "fb:semi_weakly_supervised_resnet18-118f1556.pth"),
        ("gluon_in1k", 70.844, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "gluon-gh:v0.1/gluon_resnet18_v1b-0757602b.pth"),
        ("tv_in1k", 69.752, "bsd-3-clause", 224, 0.875, "bilinear", "imagenet", "tv:resnet18-f37072fd.pth"),
    ],
    "resnet34": [
        ("a1_in1k", 76.42, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnet34_a1_0-46f8f793.pth"),
        ("a2_in1k", 75.52, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnet34_a2_0-82d47d71.pth"),
        ("a3_in1k", 70.58, "apache-2.0", 160, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnet34_a3_0-a20cabb6.pth"),
        ("bt_in1k", 75.176, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "timm-gh-old:v0.1-weights/resnet34-43635321.pth"),
        ("gluon_in1k", 74.574, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "gluon-gh:v0.1/gluon_resnet34_v1b-c6d82d59.pth"),
        ("ra4_e3600_r224_in1k", 77.492, "apache-2.0", 224, 0.9, "bicubic", "inception", ""),
        ("tv_in1k", 73.298, "bsd-3-clause", 224, 0.875, "bilinear", "imagenet", "tv:resnet34-b627a593.pth"),
    ],
    "resnet50": [
        ("a1_in1k", 80.382, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh-old:v0.1-rsb-weights/resnet50_a1_0-14fe96d1.pth"),
        ("a1h_in1k", 79.264, "apache-2.0", 176, 0.9, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnet50_a1h2_176-001a1197.pth"),
        ("a2_in1k", 79.828, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnet50_a2_0-a2746f79.pth"),
        ("a3_in1k", 75.994, "apache-2.0", 160, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnet50_a3_0-59cae1ef.pth"),
        ("am_in1k", 79.004, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "timm-gh:v0.1-weights/resnet50_am-6c502b37.pth"),
        ("b1k_in1k", 79.564, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnet50_b1k-532a802a.pth"),
        ("b2k_in1k", 79.388, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnet50_b2k-1ba180c1.pth"),
        ("bt_in1k", 78.444, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "timm-gh:v0.1-weights/rw_resnet50-86acaeed.pth"),
        ("c1_in1k", 79.766, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnet50_c1-5ba5e060.pth"),
        ("c2_in1k", 79.868, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnet50_c2-d01e05b2.pth"),
        ("d_in1k", 79.904, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnet50_d-f39db8af.pth"),
        ("fb_ssl_yfcc100m_ft_in1k", 79.252, "cc-by-nc-4.0", 224, 0.875, "bilinear", "imagenet", "fb:semi_supervised_resnet50-08389792.pth"),
        ("fb_swsl_ig1b_ft_in1k", 81.146, "cc-by-nc-4.0", 224, 0.875, "bilinear", "imagenet", "fb:semi_weakly_supervised_resnet50-16a12f1b.pth"),
        ("gluon_in1k", 77.58, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "gluon-gh:v0.1/gluon_resnet50_v1b-0ebe02e2.pth"),
        ("ra_in1k", 78.82, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "timm-gh:v0.1-weights/resnet50_ra-85ebb6e5.pth"),
        ("ram_in1k", 79.034, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "timm-gh:v0.1-weights/resnet50_ram-a26f946b.pth"),
        ("tv2_in1k", 79.434, "bsd-3-clause", 176, 0.875, "bilinear", "imagenet", "tv:resnet50-11ad3fa6.pth"),
        ("tv_in1k", 76.156, "bsd-3-clause", 224, 0.875, "bilinear", "imagenet", "tv:resnet50-0676ba61.pth"),
    ],
    "resnet101": [
        ("a1_in1k", 81.494, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnet101_a1_0-cdcb52a9.pth"),
        ("a1h_in1k", 81.95, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh-old:v0.1-rsb-weights/resnet101_a1h-36d3f2aa.pth"),
        ("a2_in1k", 81.344, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnet101_a2_0-6edb36c7.pth"),
        ("a3_in1k", 77.928, "apache-2.0", 160, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnet101_a3_0-1db14157.pth"),
        ("gluon_in1k", 79.306, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "gluon-gh:v0.1/gluon_resnet101_v1b-3b017079.pth"),
        ("tv2_in1k", 79.908, "bsd-3-clause", 176, 0.875, "bilinear", "imagenet", "tv:resnet101-cd907fc2.pth"),
        ("tv_in1k", 77.404, "bsd-3-clause", 224, 0.875, "bilinear", "imagenet", "tv:resnet101-63fe2227.pth"),
    ],
    "resnet152": [
        ("a1_in1k", 81.998, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnet152_a1_0-2eee8a7a.pth"),
        ("a1h_in1k", 82.818, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh-old:v0.1-rsb-weights/resnet152_a1h-dc400468.pth"),
        ("a2_in1k", 81.764, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnet152_a2_0-b4c6978f.pth"),
        ("a3_in1k", 78.896, "apache-2.0", 160, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnet152_a3_0-134d4688.pth"),
        ("gluon_in1k", 79.712, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "gluon-gh:v0.1/gluon_resnet152_v1b-c1edb0dd.pth"),
        ("tv2_in1k", 80.222, "bsd-3-clause", 176, 0.875, "bilinear", "imagenet", "tv:resnet152-f82ba261.pth"),
        ("tv_in1k", 78.33, "bsd-3-clause", 224, 0.875, "bilinear", "imagenet", "tv:resnet152-394f9c45.pth"),
    ],
    "resnext50_32x4d": [
        ("a1_in1k", 80.526, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnext50_32x4d_a1_0-b5a91a1d.pth"),
        ("a1h_in1k", 81.14, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh-old:v0.1-rsb-weights/resnext50_32x4d_a1h-0146ab0a.pth"),
        ("a2_in1k", 80.444, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnext50_32x4d_a2_0-efc76add.pth"),
        ("a3_in1k", 77.732, "apache-2.0", 160, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnext50_32x4d_a3_0-3e450271.pth"),
        ("fb_ssl_yfcc100m_ft_in1k", 80.316, "cc-by-nc-4.0", 224, 0.875, "bilinear", "imagenet", "fb:semi_supervised_resnext50_32x4-ddb3e555.pth"),
        ("fb_swsl_ig1b_ft_in1k", 82.162, "cc-by-nc-4.0", 224, 0.875, "bilinear", "imagenet", "fb:semi_weakly_supervised_resnext50_32x4-72679e44.pth"),
        ("gluon_in1k", 79.354, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "gluon-gh:v0.1/gluon_resnext50_32x4d-e6a097c1.pth"),
        ("ra_in1k", 79.8, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "timm-gh:v0.1-weights/resnext50_32x4d_ra-d733960d.pth"),
        ("tv2_in1k", 79.384, "bsd-3-clause", 176, 0.875, "bilinear", "imagenet", "tv:resnext50_32x4d-1a0047aa.pth"),
        ("tv_in1k", 77.632, "bsd-3-clause", 224, 0.875, "bilinear", "imagenet", "tv:resnext50_32x4d-7cdf4587.pth"),
    ],
    "resnext101_32x8d": [
        ("fb_ssl_yfcc100m_ft_in1k", 81.62, "cc-by-nc-4.0", 224, 0.875, "bilinear", "imagenet", "fb:semi_supervised_resnext101_32x8-2cfe2f8b.pth"),
        ("fb_swsl_ig1b_ft_in1k", 84.276, "cc-by-nc-4.0", 224, 0.875, "bilinear", "imagenet", "fb:semi_weakly_supervised_resnext101_32x8-b4712904.pth"),
        ("fb_wsl_ig1b_ft_in1k", 82.72, "cc-by-nc-4.0", 224, 0.875, "bilinear", "imagenet", "tv:ig_resnext101_32x8-c38310e5.pth"),
        ("tv2_in1k", 81.99, "bsd-3-clause", 176, 0.875, "bilinear", "imagenet", "tv:resnext101_32x8d-110c445d.pth"),
        ("tv_in1k", 79.308, "bsd-3-clause", 224, 0.875, "bilinear", "imagenet", "tv:resnext101_32x8d-8ba56ff5.pth"),
    ],
    "resnext101_64x4d": [
        ("c1_in1k", 82.446, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh-old:v0.1-tpu-weights/resnext101_64x4d_c-0d0e0cc0.pth"),
        ("gluon_in1k", 80.64, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "gluon-gh:v0.1/gluon_resnext101_64x4d-f9a8e184.pth"),
        ("tv_in1k", 82.978, "bsd-3-clause", 224, 0.875, "bilinear", "imagenet", "tv:resnext101_64x4d-173b62eb.pth"),
    ],
    "wide_resnet50_2": [
        ("racm_in1k", 81.466, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "timm-gh-old:v0.1-weights/wide_resnet50_racm-8234f177.pth"),
        ("tv2_in1k", 80.442, "bsd-3-clause", 176, 0.875, "bilinear", "imagenet", "tv:wide_resnet50_2-9ba9bcbe.pth"),
        ("tv_in1k", 78.486, "bsd-3-clause", 224, 0.875, "bilinear", "imagenet", "tv:wide_resnet50_2-95faca4d.pth"),
    ],
    "densenet121": [
        ("ra_in1k", 75.574, "apache-2.0", 224, 0.875, "bicubic", "imagenet", ""),
        ("tv_in1k", 74.75, "apache-2.0", 224, 0.875, "bicubic", "imagenet", ""),
    ],
    "inception_v3": [
        ("gluon_in1k", 78.806, "apache-2.0", 299, 0.875, "bicubic", "imagenet", ""),
        ("tf_adv_in1k", 77.598, "apache-2.0", 299, 0.875, "bicubic", "inception", ""),
        ("tf_in1k", 77.866, "apache-2.0", 299, 0.875, "bicubic", "inception", ""),
        ("tv_in1k", 77.472, "apache-2.0", 299, 0.875, "bicubic", "inception", "tv:inception_v3_google-1a9a5a14.pth"),
    ],
    "seresnet50": [
        ("a1_in1k", 80.012, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/seresnet50_a1_0-ffa00869.pth"),
        ("a2_in1k", 80.102, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/seresnet50_a2_0-850de0d9.pth"),
        ("a3_in1k", 75.104, "apache-2.0", 160, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/seresnet50_a3_0-317ecd56.pth"),
        ("ra2_in1k", 80.26, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "timm-gh-old:v0.1-weights/seresnet50_ra_224-8efdb4bb.pth"),
    ],
    "seresnext50_32x4d": [
        ("racm_in1k", 81.268, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "timm-gh-old:v0.1-weights/seresnext50_32x4d_racm-a304a460.pth"),
        ("gluon_in1k", 79.916, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "gluon-gh:v0.1/gluon_seresnext50_32x4d-90cf2d6e.pth"),
    ],
    "seresnext101_32x8d": [
        ("ah_in1k", 83.618, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh-old:v0.1-tpu-weights/seresnext101_32x8d_ah-e6bc4c0a.pth"),
    ],
    "resnetv2_50": [
        ("a1h_in1k", 80.41, "apache-2.0", 224, 0.95, "bicubic", "inception", ""),
    ],
    "resnetv2_101": [
        ("a1h_in1k", 82.042, "apache-2.0", 224, 0.95, "bicubic", "inception", ""),
    ],
    "inception_v4": [
        ("tf_in1k", 80.144, "apache-2.0", 299, 0.875, "bicubic", "inception", ""),
    ],
    "inception_resnet_v2": [
        ("tf_in1k", 80.434, "apache-2.0", 299, 0.8975, "bicubic", "inception", ""),
        ("tf_ens_adv_in1k", 79.998, "apache-2.0", 299, 0.8975, "bicubic", "inception", ""),
    ],
    # the second part of the zoo: ResNet-D and MobileNetV1 (zoo2/published.json), default first
    "mobilenetv1_100": [
        ("ra4_e3600_r224_in1k", 75.388, "apache-2.0", 224, 0.875, "bicubic", "inception", ""),
    ],
    "resnet18d": [
        ("ra2_in1k", 72.296, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "timm-gh-old:v0.1-weights/resnet18d_ra2-48a79e06.pth"),
        ("ra4_e3600_r224_in1k", 74.356, "apache-2.0", 224, 0.9, "bicubic", "inception", ""),
    ],
    "resnet26d": [
        ("bt_in1k", 76.698, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "timm-gh-old:v0.1-weights/resnet26d-69e92c46.pth"),
    ],
    "resnet34d": [
        ("ra2_in1k", 77.108, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "timm-gh-old:v0.1-weights/resnet34d_ra2-f8dcfcaf.pth"),
    ],
    "resnet50d": [
        ("ra2_in1k", 80.546, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "timm-gh-old:v0.1-weights/resnet50d_ra2-464e36ba.pth"),
        ("a1_in1k", 80.73, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnet50d_a1_0-e20cff14.pth"),
        ("a2_in1k", 80.268, "apache-2.0", 224, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnet50d_a2_0-a3adc64d.pth"),
        ("a3_in1k", 77.222, "apache-2.0", 160, 0.95, "bicubic", "imagenet", "timm-gh:v0.1-rsb-weights/resnet50d_a3_0-403fdfad.pth"),
        ("gluon_in1k", 79.08, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "gluon-gh:v0.1/gluon_resnet50_v1d-818a1b1b.pth"),
        ("ra4_e3600_r224_in1k", 80.956, "apache-2.0", 224, 0.95, "bicubic", "inception", ""),
    ],
    "resnet101d": [
        ("ra2_in1k", 82.254, "apache-2.0", 256, 0.95, "bicubic", "imagenet", "timm-gh-old:v0.1-weights/resnet101d_ra2-2803ffab.pth"),
        ("gluon_in1k", 80.466, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "gluon-gh:v0.1/gluon_resnet101_v1d-0f9c8644.pth"),
    ],
    "resnet152d": [
        ("ra2_in1k", 83.16, "apache-2.0", 256, 0.95, "bicubic", "imagenet", "timm-gh-old:v0.1-weights/resnet152d_ra2-5cac0439.pth"),
        ("gluon_in1k", 80.476, "apache-2.0", 224, 0.875, "bicubic", "imagenet", "gluon-gh:v0.1/gluon_resnet152_v1d-bd354e12.pth"),
    ],
    "resnet200d": [
        ("ra2_in1k", 83.25, "apache-2.0", 256, 0.95, "bicubic", "imagenet", "timm-gh-old:v0.1-weights/resnet200d_ra2-bdba9bf9.pth"),
    ],
}
# fmt: on
