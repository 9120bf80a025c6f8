"""The CIFAR implementations a Keras user would pick instead of keras-preact,
reconstructed for the side-by-side speed benchmark (bench/train_speed.py).

These are reconstructions written from the implementations' published
descriptions (their docstrings, READMEs and the papers they follow), not
copies of their code, and they are not part of the keras_preact package.
They use stock Keras 3 layers only, as the originals do, and take inputs the
way their training scripts feed them (already normalized floats).

``keras_example_resnet_v2(depth)`` reconstructs ``resnet_v2()`` of the Keras
team's example "keras/examples/cifar10_resnet.py" ("Trains a ResNet on the
CIFAR10 dataset", ResNet v2 of He et al. 2016 for CIFAR), the most widely
copied Keras CIFAR ResNet. Its description: depth 9n+2; a stem of
conv3x3(16)-BN-ReLU; three stages of n bottleneck units
BN-ReLU-conv1x1(c)-BN-ReLU-conv3x3(c)-BN-ReLU-conv1x1(4c) with c = 16, 64,
128 (stage outputs 64, 128, 256 channels at 32, 16, 8 pixels); the first
unit of stage 0 skips its leading BN-ReLU (the stem has just applied them);
the first unit of stages 1 and 2 downsamples with stride 2 in its first
1x1 conv; the first unit of every stage has a 1x1 projection shortcut (with
the unit's stride) from the unit's input, the other shortcuts are identity;
the head is BN-ReLU, 8x8 average pooling, flatten, dense softmax. Every
conv is a Keras ``Conv2D`` with its default bias, ``he_normal``
initialization and an L2(1e-4) kernel regularizer; inputs are pixels / 255
minus the training set's per-pixel mean image. Its table lists ResNet56 v2
(n=6), ResNet110 v2 (n=12) and ResNet164 v2 (n=18).

Note the example's widths: each stage's bottleneck width is the previous
stage's *output* width (16, 64, 128), not a quarter of its own output as in
the paper (16, 32, 64), so its "ResNet164 v2" has 4.97M parameters and
2.3x the multiply-adds of the paper's 1.7M-parameter ResNet-164 (which is
keras-preact's ``resnetv2_164``). ``widths="paper"`` builds the example's
code path with the paper's widths: the same network as ``resnetv2_164`` up
to the example's conv biases, the stride sitting in the first 1x1 conv
instead of the 3x3, and the projection reading the un-activated input,
i.e. equal multiply-adds to within the first unit of each stage. The
benchmark reports both: the network a user gets from the example, and the
equal-architecture control.

``titu1994_densenet(depth, growth_rate, bottleneck, reduction)`` reconstructs
the DenseNet of github.com/titu1994/DenseNet ("DenseNet implementation in
Keras"), the most-starred stand-alone Keras DenseNet, in its DenseNet-BC CIFAR
configuration. Its description: a stem conv3x3 with 2k filters for
DenseNet-BC (16 otherwise); three dense blocks of (depth - 4) / 6 bottleneck
layers BN-ReLU-conv1x1(4k)-BN-ReLU-conv3x3(k), each layer's output
concatenated to its input (one ``concatenate`` per layer); transitions
BN-ReLU-conv1x1(compressed channels)-2x2 average pooling with compression
1 - reduction; head BN-ReLU, global average pooling, dense softmax. Convs
have no bias, ``he_normal`` initialization and an L2 kernel regularizer;
BatchNormalization uses epsilon 1.1e-5. keras-preact's
``densenet_bc_100_12`` is the same network (Huang et al. 2017, Table 2).

The benchmark harness adds the same L2 penalty to every model's loss, so
``weight_decay`` defaults to 0 here (the originals' ``kernel_regularizer``
would add it a second time for these models only).
"""

import keras
from keras import layers


def _regularizer(weight_decay):
    return keras.regularizers.L2(weight_decay) if weight_decay else None


def keras_example_resnet_v2(depth=164, input_shape=(32, 32, 3), classes=10, weight_decay=0.0,
                            classifier_activation="softmax", widths="example"):
    """Reconstruction of ``resnet_v2()`` from the Keras example cifar10_resnet.py (see module doc).

    widths: "example" (bottleneck widths 16, 64, 128, as the example builds
        them) or "paper" (16, 32, 64, He et al. 2016; equal to resnetv2_164).
    """
    if (depth - 2) % 9:
        raise ValueError(f"depth must be 9n+2 (e.g. 56, 110, 164); received {depth}")
    if widths not in ("example", "paper"):
        raise ValueError(f"widths must be 'example' or 'paper'; received {widths!r}")
    units = (depth - 2) // 9
    reg = _regularizer(weight_decay)

    def conv(x, filters, kernel, strides=1):
        return layers.Conv2D(filters, kernel, strides=strides, padding="same",
                             kernel_initializer="he_normal", kernel_regularizer=reg)(x)

    def bn_relu(x):
        return layers.Activation("relu")(layers.BatchNormalization()(x))

    inputs = keras.Input(input_shape)
    x = bn_relu(conv(inputs, 16, 3))
    width = 16
    for stage in range(3):
        out = width * 4 if stage == 0 else width * 2
        if widths == "paper":
            out = 64 * 2**stage
            width = out // 4
        for unit in range(units):
            first = unit == 0
            strides = 2 if (first and stage > 0) else 1
            y = x if (first and stage == 0) else bn_relu(x)
            y = conv(y, width, 1, strides)
            y = conv(bn_relu(y), width, 3)
            y = conv(bn_relu(y), out, 1)
            shortcut = conv(x, out, 1, strides) if first else x
            x = layers.Add()([shortcut, y])
        width = out
    x = layers.AveragePooling2D(pool_size=8)(bn_relu(x))
    x = layers.Flatten()(x)
    outputs = layers.Dense(classes, activation=classifier_activation, kernel_initializer="he_normal")(x)
    suffix = "" if widths == "example" else "_paper_widths"
    return keras.Model(inputs, outputs, name=f"keras_example_resnet{depth}v2{suffix}")


def titu1994_densenet(depth=100, growth_rate=12, bottleneck=True, reduction=0.5,
                      input_shape=(32, 32, 3), classes=10, weight_decay=0.0,
                      classifier_activation="softmax"):
    """Reconstruction of titu1994/DenseNet's CIFAR DenseNet(-BC) (see module doc)."""
    per_block = (depth - 4) // 3
    if bottleneck:
        per_block //= 2
    if per_block < 1 or (depth - 4) % (6 if bottleneck else 3):
        raise ValueError(f"depth must be 6n+4 with bottleneck (3n+4 without); received {depth}")
    reg = _regularizer(weight_decay)

    def bn_relu(x):
        return layers.Activation("relu")(layers.BatchNormalization(epsilon=1.1e-5)(x))

    def conv(x, filters, kernel):
        return layers.Conv2D(filters, kernel, padding="same", use_bias=False,
                             kernel_initializer="he_normal", kernel_regularizer=reg)(x)

    inputs = keras.Input(input_shape)
    channels = 2 * growth_rate if (bottleneck and reduction > 0) else 16
    x = conv(inputs, channels, 3)
    for block in range(3):
        for _ in range(per_block):
            y = x
            if bottleneck:
                y = conv(bn_relu(y), 4 * growth_rate, 1)
            y = conv(bn_relu(y), growth_rate, 3)
            x = layers.Concatenate()([x, y])
            channels += growth_rate
        if block < 2:
            channels = int(channels * (1.0 - reduction))
            x = layers.AveragePooling2D(2, strides=2)(conv(bn_relu(x), channels, 1))
    x = layers.GlobalAveragePooling2D()(bn_relu(x))
    outputs = layers.Dense(classes, activation=classifier_activation)(x)
    return keras.Model(inputs, outputs, name=f"titu1994_densenet_bc_{depth}_{growth_rate}")


# ----------------------------------------------------------------------------- PyTorch references
# Written for bench/cpu_training.py: the same networks as keras-preact's resnetv2_* and
# densenet_bc_* (layer for layer, parameter counts asserted equal by the bench), in plain
# PyTorch as a PyTorch user would write them, to compare CPU training speed. torch is a
# bench-only optional dependency: it is imported here only when one of these is built.

TORCH_CIFAR_MEAN = (0.4914, 0.4822, 0.4465)  # keras_preact's "cifar" ImageNormalization constants
TORCH_CIFAR_STD = (0.2470, 0.2435, 0.2616)
TORCH_BN_EPSILON = 1.001e-5  # keras_preact.models._builder.BN_EPSILON
TORCH_BN_MOMENTUM = 0.01  # Keras' momentum 0.99 (PyTorch counts the other way)


def torch_preact_resnet(depth=20, block="basic", classes=10):
    """Pre-activation ResNet for CIFAR (He et al. 2016, "Identity Mappings"), the same
    network as ``keras_preact.ResNetV2(depth, block=block)``: uint8 NHWC-ordered pixels
    in (normalized inside, as keras-preact's models do), conv3x3(16) stem, three stages
    (widths 16/32/64; bottleneck units output 4x), full pre-activation units with the
    stride in the 3x3 conv and a 1x1 projection from the pre-activated input where the
    shape changes, then BN-ReLU, global average pooling and a dense layer. Convolutions
    have no bias; BatchNorm epsilon 1.001e-5, momentum 0.99 (Keras' convention)."""
    import torch
    from torch import nn

    if block not in ("basic", "bottleneck"):
        raise ValueError(f"block must be 'basic' or 'bottleneck'; received {block!r}")
    per_unit = 2 if block == "basic" else 3
    if (depth - 2) % (3 * per_unit):
        raise ValueError(f"depth must be {3 * per_unit}n+2 for {block} units; received {depth}")
    units = (depth - 2) // (3 * per_unit)
    expansion = 1 if block == "basic" else 4

    def bn(c):
        return nn.BatchNorm2d(c, eps=TORCH_BN_EPSILON, momentum=TORCH_BN_MOMENTUM)

    class Unit(nn.Module):
        def __init__(self, cin, width, stride):
            super().__init__()
            cout = width * expansion
            self.preact = nn.Sequential(bn(cin), nn.ReLU(inplace=True))
            if block == "basic":
                self.branch = nn.Sequential(
                    nn.Conv2d(cin, width, 3, stride, 1, bias=False), bn(width), nn.ReLU(inplace=True),
                    nn.Conv2d(width, width, 3, 1, 1, bias=False))
            else:
                self.branch = nn.Sequential(
                    nn.Conv2d(cin, width, 1, bias=False), bn(width), nn.ReLU(inplace=True),
                    nn.Conv2d(width, width, 3, stride, 1, bias=False), bn(width), nn.ReLU(inplace=True),
                    nn.Conv2d(width, cout, 1, bias=False))
            self.project = (nn.Conv2d(cin, cout, 1, stride, bias=False)
                            if (cin != cout or stride != 1) else None)

        def forward(self, x):
            pre = self.preact(x)
            shortcut = self.project(pre) if self.project is not None else x
            return shortcut + self.branch(pre)

    class PreActResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor(TORCH_CIFAR_MEAN).view(1, 3, 1, 1) * 255.0)
            self.register_buffer("std", torch.tensor(TORCH_CIFAR_STD).view(1, 3, 1, 1) * 255.0)
            self.stem = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            layers_, cin = [], 16
            for stage, width in enumerate((16, 32, 64)):
                for i in range(units):
                    layers_.append(Unit(cin, width, 2 if (stage > 0 and i == 0) else 1))
                    cin = width * expansion
            self.units = nn.Sequential(*layers_)
            self.post = nn.Sequential(bn(cin), nn.ReLU(inplace=True))
            self.fc = nn.Linear(cin, classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

        def forward(self, images):
            # images: uint8 (N, 3, H, W) in channels_last memory format (NHWC storage).
            x = (images.float() - self.mean) / self.std
            x = self.post(self.units(self.stem(x)))
            return self.fc(x.mean((2, 3)))

    return PreActResNet()


def torch_densenet_bc(depth=100, growth_rate=12, compression=0.5, classes=10):
    """DenseNet-BC for CIFAR (Huang et al. 2017), the same network as
    ``keras_preact.DenseNet(depth, growth_rate=k, bottleneck=True, compression=0.5)``:
    conv3x3(2k) stem; three dense blocks of (depth - 4) / 6 layers
    BN-ReLU-conv1x1(4k)-BN-ReLU-conv3x3(k), each concatenated to its input; transitions
    BN-ReLU-conv1x1(floor(compression * channels))-2x2 average pooling; BN-ReLU, global
    average pooling, dense. uint8 pixels in, normalized inside."""
    import torch
    from torch import nn

    if (depth - 4) % 6:
        raise ValueError(f"depth must be 6n+4; received {depth}")
    per_block = (depth - 4) // 6
    k = growth_rate

    def bn_relu(c):
        return [nn.BatchNorm2d(c, eps=TORCH_BN_EPSILON, momentum=TORCH_BN_MOMENTUM), nn.ReLU(inplace=True)]

    class DenseLayer(nn.Module):
        def __init__(self, cin):
            super().__init__()
            self.body = nn.Sequential(*bn_relu(cin), nn.Conv2d(cin, 4 * k, 1, bias=False),
                                      *bn_relu(4 * k), nn.Conv2d(4 * k, k, 3, 1, 1, bias=False))

        def forward(self, x):
            return torch.cat([x, self.body(x)], 1)

    class DenseNetBC(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor(TORCH_CIFAR_MEAN).view(1, 3, 1, 1) * 255.0)
            self.register_buffer("std", torch.tensor(TORCH_CIFAR_STD).view(1, 3, 1, 1) * 255.0)
            c = 2 * k
            mods = [nn.Conv2d(3, c, 3, 1, 1, bias=False)]
            for b in range(3):
                for _ in range(per_block):
                    mods.append(DenseLayer(c))
                    c += k
                if b < 2:
                    out = int(c * compression)
                    mods += [*bn_relu(c), nn.Conv2d(c, out, 1, bias=False), nn.AvgPool2d(2, 2)]
                    c = out
            mods += bn_relu(c)
            self.features = nn.Sequential(*mods)
            self.fc = nn.Linear(c, classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

        def forward(self, images):
            x = (images.float() - self.mean) / self.std
            return self.fc(self.features(x).mean((2, 3)))

    return DenseNetBC()
