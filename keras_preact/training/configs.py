"""Named training recipes ("configs").

Every recipe is a :class:`TrainConfig` whose docstring cites the paper section it
follows. The numbers come from the papers; the project keeps a digest of them in
``../shared/reference/papers.md`` (sections "ResNet v1", "ResNet v2", "DenseNet").

Weight decay
------------
All recipes use *coupled* L2 weight decay, the form the papers used (Caffe / Torch
SGD: ``g <- g + wd * w`` before the momentum update). We implement it as the penalty
``0.5 * wd * sum(||W||^2)`` added to the loss, whose gradient is exactly ``wd * W``.
We do NOT use ``keras.optimizers.SGD(weight_decay=...)``: in Keras 3 that is the
*decoupled* form (``w <- w - lr * wd * w`` applied outside the momentum buffer, see
``keras/src/backend/tensorflow/optimizer.py::_apply_weight_decay``), which with
momentum 0.9 is about 10x weaker than the papers' decay at the same ``wd``.

The penalty covers convolution and dense *kernels* only (variables whose name is
``kernel`` or ``depthwise_kernel``/``pointwise_kernel``); BatchNorm gamma/beta and biases
are not decayed (``weight_decay_scope="kernels"``). The original Torch code decayed every
parameter; decaying BN parameters and biases is known to make no measurable difference
at 1e-4 and the kernels-only choice is the common modern practice. ``"all"`` is
available for strict reproduction.

Learning-rate schedules
-----------------------
``lr_schedule`` is one of

* ``"piecewise"``: ``learning_rate`` multiplied by ``lr_decay`` at each boundary.
  ``boundary_unit`` says what the boundaries count: ``"steps"`` (optimizer iterations,
  as in the ResNet papers), ``"epochs"`` (ImageNet recipes) or ``"fraction"`` of the
  total number of training steps (DenseNet: 50% and 75%).
* ``"cosine"``: linear warm-up for ``warmup_epochs`` from ``warmup_factor * lr`` to
  ``lr``, then half-cosine decay to ``min_lr_factor * lr`` at the last step.
* ``"onecycle"``: linear warm-up as above, then *linear* decay to
  ``min_lr_factor * lr`` at the last step.

``warmup_steps``/``warmup_factor`` with ``"piecewise"`` gives the ResNet-110/1001
warm-up (constant ``0.1 * lr`` for the first 400 iterations).

Weight averaging
----------------
``ema_momentum > 0`` keeps an exponential moving average of the trainable weights
(``average <- m * average + (1 - m) * weight`` after every step: Keras' own
``use_ema``/``ema_momentum`` of the optimizer, as timm's ``--model-ema``), evaluates it
instead of the live weights, and exports it as the run's final weights. 0.999 averages
over about 1,000 steps (2.6 CIFAR epochs at batch 128). Batch norm's moving statistics
belong to the live weights, so before each evaluation and the export they are recomputed
for the average on ``ema_batch_norm_batches`` training batches (default 100: 12,800
images; SWA's ``bn_update``, ``training.batch_norm_statistics``); the live weights and
statistics go on training. Not in the papers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Tuple

PAPERS_MD = "../shared/reference/papers.md"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Base recipe: every field a named config may set. See the module docstring."""

    name: str = "base"
    # Optimisation.
    epochs: int = 1
    # If set, training stops after this many optimizer iterations (ResNet CIFAR: 64k),
    # and `epochs` is derived from it unless --epochs is given.
    total_steps: Optional[int] = None
    batch_size: int = 128
    learning_rate: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    weight_decay_scope: str = "kernels"  # "kernels" | "all"
    label_smoothing: float = 0.0
    # Learning-rate schedule (module docstring).
    lr_schedule: str = "piecewise"
    lr_boundaries: Tuple[float, ...] = ()
    boundary_unit: str = "steps"  # "steps" | "epochs" | "fraction"
    lr_decay: float = 0.1
    warmup_steps: int = 0
    warmup_epochs: float = 0.0
    warmup_factor: float = 0.1
    min_lr_factor: float = 0.0
    # Data.
    augment: str = "cifar"  # "cifar" | "cifar_cutout" | "imagenet" | "none" (training.pipeline)
    image_size: Optional[int] = None  # None: the model's default input size
    shuffle_buffer: int = 50_000
    cache: str = "auto"  # "auto" | "memory" | "none"
    # Model options passed to keras_preact.get_model (None: builder default).
    dropout_rate: Optional[float] = None
    drop_path_rate: Optional[float] = None
    zero_init_residual: Optional[bool] = None
    # Execution.
    mixed_precision: str = "none"  # "none" | "mixed_float16" | "mixed_bfloat16"
    jit_compile: bool = False
    # Train batch norm with one FusedBatchNormV3 kernel (training.fused_batch_norm): the same
    # function, 1.2-1.5x faster steps on the CPU (BENCHMARKS.md section 7). False: Keras' own.
    fused_batch_norm: bool = True
    # Exponential moving average of the weights (module docstring); 0: off.
    ema_momentum: float = 0.0
    # With ema_momentum: training batches whose batch-norm statistics replace the live ones
    # before the average is evaluated or exported (training.batch_norm_statistics); 0: keep them.
    ema_batch_norm_batches: int = 100
    # Evaluate on the test split after every `eval_every` epochs (the final evaluation
    # always runs). 0 disables per-epoch evaluation.
    eval_every: int = 1

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["lr_boundaries"] = list(self.lr_boundaries)
        d["recipe_doc"] = (type(self).__doc__ or "").strip().splitlines()[0]
        return d


@dataclasses.dataclass(frozen=True)
class ResNetCifar(TrainConfig):
    """ResNet on CIFAR, the papers' recipe (He et al. 2015 sec. 4.2; He et al. 2016 sec. 4/5).

    SGD momentum 0.9, weight decay 1e-4, batch 128, lr 0.1 divided by 10 at 32k and
    48k iterations, training stops at 64k iterations (about 164 epochs of 50k images);
    standard augmentation: 4-pixel zero padding, random 32x32 crop, horizontal flip.
    Source digest: ../shared/reference/papers.md, "ResNet v1 ... Recipe (sec. 4.2)".
    """

    name: str = "resnet_cifar"
    epochs: int = 164
    total_steps: Optional[int] = 64_000
    batch_size: int = 128
    learning_rate: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_schedule: str = "piecewise"
    lr_boundaries: Tuple[float, ...] = (32_000, 48_000)
    boundary_unit: str = "steps"
    augment: str = "cifar"


@dataclasses.dataclass(frozen=True)
class ResNetCifarWarmup(ResNetCifar):
    """ResNet-110/1001 on CIFAR with the papers' warm-up (He et al. 2015 sec. 4.2; 2016 sec. 4.1).

    As ``resnet_cifar`` but lr 0.01 for the first 400 iterations (v1 paper: "until the
    training error is below 80% (about 400 iterations)"; v2 paper: "0.01 for the first
    400 iterations"), then 0.1, /10 at 32k and 48k, stop at 64k. We use the fixed
    400-iteration form of the v2 paper.
    Source digest: ../shared/reference/papers.md, "ResNet v1 ... Recipe", "ResNet v2 ... Recipe".
    """

    name: str = "resnet_cifar_warmup"
    warmup_steps: int = 400
    warmup_factor: float = 0.1


@dataclasses.dataclass(frozen=True)
class DenseNetCifar(TrainConfig):
    """DenseNet on CIFAR with augmentation (Huang et al. 2017 sec. 4.2, "Training").

    SGD with Nesterov momentum 0.9 (no dampening), weight decay 1e-4, batch 64,
    300 epochs, lr 0.1 divided by 10 at 50% and 75% of the training epochs; standard
    augmentation (C10+/C100+), no dropout.
    Source digest: ../shared/reference/papers.md, "DenseNet ... Recipe (sec. 4.2)".
    """

    name: str = "densenet_cifar"
    epochs: int = 300
    batch_size: int = 64
    learning_rate: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    lr_schedule: str = "piecewise"
    lr_boundaries: Tuple[float, ...] = (0.5, 0.75)
    boundary_unit: str = "fraction"
    augment: str = "cifar"
    dropout_rate: Optional[float] = 0.0


@dataclasses.dataclass(frozen=True)
class DenseNetCifarNoAug(DenseNetCifar):
    """DenseNet on CIFAR without augmentation (Huang et al. 2017 sec. 4.2: C10/C100 columns).

    As ``densenet_cifar`` but no data augmentation and dropout 0.2 after each
    convolution except the first ("we add a dropout layer ... dropout rate 0.2",
    only for the datasets without augmentation).
    Source digest: ../shared/reference/papers.md, "DenseNet ... Recipe (sec. 4.2)".
    """

    name: str = "densenet_cifar_noaug"
    augment: str = "none"
    dropout_rate: Optional[float] = 0.2


@dataclasses.dataclass(frozen=True)
class ResNetImageNet(TrainConfig):
    """ResNet (v1 and v2) on ImageNet (He et al. 2015 sec. 3.4; He et al. 2016 sec. 5 / Table 5).

    SGD momentum 0.9, weight decay 1e-4, batch 256, lr 0.1 divided by 10 at epochs 30
    and 60, 90 epochs; scale + aspect-ratio augmentation (random-resized 224 crops) and
    horizontal flip; single 224 centre crop for evaluation.
    Source digest: ../shared/reference/papers.md, "ResNet v2 ... Recipe: ImageNet lr 0.1 /10
    at epochs 30 and 60, batch 256".
    """

    name: str = "resnet_imagenet"
    epochs: int = 90
    batch_size: int = 256
    learning_rate: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_schedule: str = "piecewise"
    lr_boundaries: Tuple[float, ...] = (30, 60)
    boundary_unit: str = "epochs"
    augment: str = "imagenet"
    image_size: Optional[int] = 224
    shuffle_buffer: int = 10_000
    cache: str = "none"


@dataclasses.dataclass(frozen=True)
class DenseNetImageNet(ResNetImageNet):
    """DenseNet on ImageNet (Huang et al. 2017 sec. 4.2, "Training").

    SGD Nesterov momentum 0.9, weight decay 1e-4, batch 256, 90 epochs, lr 0.1 divided by
    10 at epochs 30 and 60; the standard (ResNet) ImageNet augmentation.
    Source digest: ../shared/reference/papers.md, "DenseNet ... ImageNet: 90 epochs, batch
    256, lr 0.1 /10 at epochs 30 and 60".
    """

    name: str = "densenet_imagenet"
    nesterov: bool = True


@dataclasses.dataclass(frozen=True)
class CifarCpuShort(TrainConfig):
    """Short CIFAR recipe for ResNet-20 / pre-act ResNet-20 on one 2-core CPU (about 1 hour).

    Not from a paper: the papers' 64k-iteration schedule (sec. 4.2 of He et al. 2015,
    ../shared/reference/papers.md) takes ~164 epochs, about 11 hours here. Within an hour's
    budget the best accuracy per step comes from a one-cycle style schedule: linear
    warm-up over 2 epochs from 0.02 to a peak lr of 0.2 (batch 128), then linear decay
    to 0 at the last step (Smith & Topin 2017, "super-convergence"; the schedule used by
    the fast CIFAR-10 DAWNBench entries). Nesterov momentum 0.9; weight decay 5e-4
    (coupled L2 on kernels) rather than 1e-4, because with few epochs a stronger decay
    regularises better (also what the fast-CIFAR recipes use); label smoothing 0.1;
    the papers' augmentation (pad 4 + random crop + flip).

    Throughput measured here (2 cores, AMD EPYC Zen 3: AVX2/FMA, *no* AVX-512 / AVX512-BF16 /
    AMX despite what we assumed; TF 2.21 CPU; batch 128; synthetic batch, ``python -m
    bench.train_step``; the machine was shared, 1-min load average 2.5-7.8, so absolute
    numbers are pessimistic and noisy):

    ==============  ==========  ===========  ===============  ==================
    model           fp32        fp32 + XLA   mixed_bfloat16   bf16 + XLA
    ==============  ==========  ===========  ===============  ==================
    resnet_20       1152 ms     2061 ms      12243 ms         1410 ms
    resnetv2_20     1633 ms     1858 ms      15058 ms         1168 ms
    ==============  ==========  ===========  ===============  ==================

    (ms per training step.) An earlier, quieter measurement (load 1.7) of the same
    architectures gave resnetv2_20 736 ms fp32 / 626 ms fp32+XLA / 560 ms bf16+XLA /
    5216 ms bf16, and ResNet-20 v1 951 / 1014 ms. So: bf16 without XLA is 7-10x slower
    (no bf16 instructions; emulated), bf16 + XLA is no better than fp32 within the noise and
    costs precision, and XLA does not reliably help fp32. The recipe uses float32 without
    jit_compile. (A later machine with AVX512_BF16 ran the step 2.4-2.8x faster and bf16 at
    0.93-1.05x of fp32, still not reliably faster: BENCHMARKS.md, "The sweep again on an
    AVX512_BF16 CPU". There an epoch took about 3.3 min with one thread beside a second
    training run, 2 min with two threads alone.) At ~0.75-0.95 s/step on a quiet machine an
    epoch (390 steps) takes ~5-6 minutes, so 12 epochs + per-epoch test evaluation is about an hour; the epoch
    count is the only knob to turn for a different budget (``--epochs``; the schedule
    stretches with it). Our estimate (not a measurement) is roughly 89-90% top-1 on
    CIFAR-10 (JPEG q75 copy) for ResNet-20 in 12 epochs; for the >= 91% target use
    ``cifar_cpu_long`` (same schedule, 40 epochs). Note: while the lr is near its peak
    the test accuracy (BatchNorm moving statistics, momentum 0.99) lags far behind the
    training accuracy -- measured at epoch 2 of a pre-act ResNet-20 run: 32% with the
    moving statistics vs 65% with batch statistics on the same weights; the gap closes as
    the lr decays to 0.
    """

    name: str = "cifar_cpu_short"
    epochs: int = 12
    batch_size: int = 128
    learning_rate: float = 0.2
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    lr_schedule: str = "onecycle"
    warmup_epochs: float = 2.0
    warmup_factor: float = 0.1
    min_lr_factor: float = 0.0
    augment: str = "cifar"
    mixed_precision: str = "none"
    jit_compile: bool = False


@dataclasses.dataclass(frozen=True)
class CifarCpuLong(CifarCpuShort):
    """Longer CPU recipe for ResNet-20 / pre-act ResNet-20 aimed at >= 91% CIFAR-10 top-1.

    The ``cifar_cpu_short`` schedule (one-cycle: 2-epoch linear warm-up to lr 0.2, linear
    decay to 0; Nesterov SGD, coupled L2 5e-4 on kernels, label smoothing 0.1, the papers'
    pad-4/crop/flip augmentation, He et al. 2015 sec. 4.2 in ../shared/reference/papers.md)
    stretched to 40 epochs, about 3.5-4 hours on the 2-core CPU. The papers' 164-epoch
    step schedule reaches 91.25% (ResNet-20, Table 6); a one-cycle schedule gets there in
    far fewer epochs, and 40 leaves a margin over the ~30 usually quoted.
    """

    name: str = "cifar_cpu_long"
    epochs: int = 40


@dataclasses.dataclass(frozen=True)
class CifarCpuAnneal(CifarCpuLong):
    """A second, gentler cycle that continues a finished ``cifar_cpu_long`` run.

    Use with ``--init_from=<the finished run's model_dir>``: the weights start where the
    first cycle ended (a fresh optimizer), the lr warms up over 1 epoch to 0.05 -- a
    quarter of the first cycle's peak -- and decays linearly to 0 over 30 epochs, so 70
    epochs in all. Why: in both 40-epoch runs the test accuracy gained most in the last
    10 epochs, as the lr fell from 0.05 to 0 (resnet_20: 78.6% after epoch 31, 87.8% after
    40; resnetv2_20: 77.7% and 87.4%; training/results/*_cifar_cpu_long/run.json), and
    training accuracy was still rising; the papers spend 82 of 164 epochs at lr <= 0.01 (He et al. 2015 sec. 4.2,
    ../shared/reference/papers.md). Restarting the lr from a trained model rather than
    from scratch is SGDR's warm restart (Loshchilov & Hutter 2017). Everything else is
    ``cifar_cpu_short``'s. Measured on CIFAR-10 (JPEG q75 copy), 1.6 h per run beside a
    second run on the 2-core AVX-512 CPU: resnet_20 87.84% -> 88.18%, resnetv2_20
    87.43% -> 88.05% test top-1 (training/results/*_cifar_cpu_anneal/run.json), while
    training accuracy rose by about 3 points: still short of 91%. After ``cifar_cpu_deep``,
    resnetv2_56 went 89.17% -> 89.62% (1.6 h; 166 s a median epoch), and stopped there:
    a third such cycle fell to 89.27% (``cifar_cpu_cutout`` is the one that helped).
    """

    name: str = "cifar_cpu_anneal"
    epochs: int = 30
    learning_rate: float = 0.05
    warmup_epochs: float = 1.0


@dataclasses.dataclass(frozen=True)
class CifarCpuCutout(CifarCpuAnneal):
    """``cifar_cpu_anneal``'s cycle with Cutout, to continue a run that overfits.

    Use with ``--init_from=<a finished run's model_dir>``. The same restart (1-epoch
    warm-up to lr 0.05, linear decay to 0), over 36 epochs, with the papers' pad-4 / crop /
    flip (He et al. 2015 sec. 4.2, ../shared/reference/papers.md) followed by Cutout: one
    16x16 square per image filled with the mean pixel (DeVries & Taylor 2017,
    arXiv:1708.04552; training.pipeline). Why: after
    ``cifar_cpu_deep`` + ``cifar_cpu_anneal`` ResNetV2-56 fit 98-99% of the augmented
    training set at 89.62% test top-1, and a third plain cycle (lr 0.03, weight EMA) fell
    to 89.27% (docs/zoo.md): more of the same recipe fits the training set, not the test
    set. Cutout cut CIFAR-10 error by 0.3-0.8 points in its paper (ResNet-18, WRN-28-10,
    Shake-Shake, trained from scratch); its cost here is one mask per image in tf.data.
    Measured on CIFAR-10 (JPEG q75 copy), 2-core AVX-512 CPU: ResNetV2-56 89.62% -> 90.42%
    test top-1 in 1.7 h (167 s a median epoch, as without Cutout), training accuracy 92.3%
    instead of 98.7%: the zoo's resnetv2_56_cifar10 (docs/zoo.md).
    """

    name: str = "cifar_cpu_cutout"
    epochs: int = 36
    augment: str = "cifar_cutout"


@dataclasses.dataclass(frozen=True)
class CifarCpuDeep(CifarCpuLong):
    """One 60-epoch cycle for the deeper pre-activation ResNets (56/110) on a 2-core CPU.

    ``cifar_cpu_long``'s recipe (one-cycle: 2-epoch linear warm-up to lr 0.2, linear decay
    to 0; Nesterov SGD, L2 5e-4 on kernels, label smoothing 0.1; the papers' pad-4 / crop /
    flip, He et al. 2015 sec. 4.2 in ../shared/reference/papers.md) over 60 epochs, planned
    from measured epoch times: ResNetV2-56 with the fused batch norm trained an epoch
    (augmentation and test evaluation included) in 196 s (median of the 60; 155-220 s
    alone) on the 2-core AVX-512 CPU, so 60 epochs are about 3.3 hours, carried across
    sessions with ``training/carry.py`` (ResNetV2-56: 89.17% on CIFAR-10 (JPEG q75 copy),
    4.2 h of wall time with pauses; then 89.62% after a ``cifar_cpu_anneal`` cycle and
    90.42% after a ``cifar_cpu_cutout`` one, the zoo's resnetv2_56_cifar10; docs/zoo.md).
    Why one longer cycle rather than 40 + a restart: the ResNet-20 runs gained most while
    the lr decayed (cifar_cpu_anneal's docstring), and a 56-layer net has the capacity to
    use more of that phase; the v1 paper's ResNet-56 is 1.78 points ahead of ResNet-20 at
    the same recipe (Table 6).
    """

    name: str = "cifar_cpu_deep"
    epochs: int = 60


@dataclasses.dataclass(frozen=True)
class CifarCpuResNetV2_164(CifarCpuDeep):
    """The flagship ResNetV2-164 in one budgeted cycle on a 2-core CPU (issue 35).

    ``cifar_cpu_deep``'s one-cycle (2-epoch linear warm-up to lr 0.2, linear decay to 0 at
    the last planned epoch; Nesterov SGD, coupled L2 5e-4 on kernels, label smoothing 0.1)
    with three things fixed before training, none chosen by test accuracy:

    * 45 epochs, planned from the measured step: 72 images/s for ResNetV2-164 with the fused
      batch norm on the 2-core Intel Xeon (AVX-512, AMX) of issue 35, so about 12 minutes an
      epoch and 9-10 hours alone for 45 (about 19 CPU-hours of the issue's 20), carried across
      sessions with ``training/carry.py``.
    * Cutout (one 16x16 mean-pixel square per image after pad-4 / crop / flip; DeVries &
      Taylor 2017) from the first epoch: it is what lifted ResNetV2-56 from 89.62% to 90.42%
      (``cifar_cpu_cutout``), and a 1.7M-parameter net fits the augmented set otherwise.
    * An exponential moving average of the weights, momentum 0.999 (about 1,000 steps, 2.6
      epochs), evaluated and exported as the final weights: the averaging the card names,
      with batch-norm statistics recomputed for it on 100 training batches
      (``ema_batch_norm_batches``; added at epoch 10 of the run, after the live weights'
      statistics were found not to fit the average at a high lr: docs/zoo.md).
    * The test split is evaluated every 5th epoch (and at the end) only to watch the run:
      an evaluation of 10,000 images costs about 6% of an epoch here.

    The v2 paper trains ResNet-164 for 164 epochs (lr 0.1, /10 at 32k and 48k iterations):
    94.54% on the original CIFAR-10 (He et al. 2016, Tables 2 and 3, sec. 4.1;
    ../shared/reference/papers.md). On CIFAR-10 (JPEG q75 copy) and a quarter of the epochs,
    we expect 2-3 points less.
    """

    name: str = "cifar_cpu_resnetv2_164"
    epochs: int = 45
    augment: str = "cifar_cutout"
    ema_momentum: float = 0.999
    eval_every: int = 5


@dataclasses.dataclass(frozen=True)
class CifarCpuDenseNetBC100(CifarCpuResNetV2_164):
    """DenseNet-BC-100 (k=12) in one budgeted cycle on a 2-core CPU (issue 35), after ResNetV2-164.

    ``cifar_cpu_resnetv2_164``'s recipe unchanged but for the number of epochs: one-cycle
    (2-epoch linear warm-up to lr 0.2, linear decay to 0 at the last planned epoch), Nesterov
    SGD, coupled L2 5e-4 on kernels, label smoothing 0.1, batch 128, Cutout from the first
    epoch, the weights' EMA (momentum 0.999, batch-norm statistics recomputed for it)
    evaluated and exported, the test split watched every 5th epoch. Batch 128 at lr 0.2 is
    the DenseNet paper's batch 64 at lr 0.1 scaled linearly (Huang et al. 2017 sec. 4.2,
    ../shared/reference/papers.md); the recipe's L2 5e-4 rather than the paper's 1e-4 suits
    a schedule of tens of epochs, as for the ResNets.

    20 epochs, planned from the measured step after issue 35's speed pass (BENCHMARKS.md section
    8: nothing tried was 1.1x faster, so batch 128, float32, the fused batch norm and the plain
    model stay): 39.0 images/s for DenseNet-BC-100 on the 2-core Intel Xeon (AVX-512, AMX) of
    issue 35 (`bench/results/cpu_training_sweep_densenet.json`; the issue's first figure was
    43), i.e. about 21.4 minutes of training an epoch plus about 7% for the evaluations and the
    recomputed statistics, so 20 epochs are about 7.6 hours alone, the issue's budget of 15
    CPU-hours. The paper trains 300 epochs (95.49% on the original CIFAR-10, Table 2); public
    budgets (../shared/reference/cifar-budgets.md) put a one-cycle ResNet-56 at 92.3% after 50
    epochs on the original images, and CIFAR-10 (JPEG q75 copy) costs 1-3 points more.
    """

    name: str = "cifar_cpu_densenet_bc_100"
    epochs: int = 20


@dataclasses.dataclass(frozen=True)
class DenseNetCifarCpuShort(CifarCpuShort):
    """Short CIFAR recipe for DenseNet-BC on one 2-core CPU (about 1 hour).

    As ``cifar_cpu_short`` (one-cycle schedule, see its docstring) but with the DenseNet
    paper's batch 64, Nesterov momentum and weight decay 1e-4 (Huang et al. 2017 sec. 4.2,
    ../shared/reference/papers.md) and peak lr 0.1. DenseNet-BC-100 (k=12) is far more
    expensive per image than ResNet-20 on this CPU: measured 22.9 s per batch-64 step
    (2.8 images/s) with the machine under load (1-min load average 9.6), and 3.9 s per step
    (16.5 images/s) on a quiet machine (``python -m bench.train_speed``, 2026-11-24,
    bench/results/train_speed.json), i.e. about 50 minutes per epoch at best: an hour buys
    about one epoch. Hence 1 epoch with a
    short warm-up (0.1 epoch): a smoke-level result, not a paper reproduction -- use
    ``densenet_cifar`` on a GPU for that.
    """

    name: str = "densenet_cifar_cpu_short"
    epochs: int = 1
    warmup_epochs: float = 0.1
    batch_size: int = 64
    learning_rate: float = 0.1
    weight_decay: float = 1e-4


@dataclasses.dataclass(frozen=True)
class Smoke(TrainConfig):
    """Tiny recipe for tests and smoke runs (not from a paper): 1 epoch, constant lr 0.05."""

    name: str = "smoke"
    epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 0.05
    lr_schedule: str = "piecewise"
    shuffle_buffer: int = 1000


_REGISTRY = {
    cls.name: cls
    for cls in (
        ResNetCifar,
        ResNetCifarWarmup,
        DenseNetCifar,
        DenseNetCifarNoAug,
        ResNetImageNet,
        DenseNetImageNet,
        CifarCpuShort,
        CifarCpuLong,
        CifarCpuAnneal,
        CifarCpuCutout,
        CifarCpuDeep,
        CifarCpuResNetV2_164,
        CifarCpuDenseNetBC100,
        DenseNetCifarCpuShort,
        Smoke,
    )
}


def list_configs() -> list:
    """Names of all registered recipes, sorted."""
    return sorted(_REGISTRY)


def get_config(name: str) -> TrainConfig:
    """The recipe called `name`; ValueError naming the valid ones if unknown."""
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise ValueError(
            f"Unknown config {name!r}. Valid configs: {', '.join(list_configs())}"
        ) from None


def default_config_for(family: str, dataset_kind: str) -> str:
    """The paper recipe to use when --config is not given."""
    if dataset_kind == "imagenet":
        return "densenet_imagenet" if family == "densenet" else "resnet_imagenet"
    return "densenet_cifar" if family == "densenet" else "resnet_cifar"


# Cutout (augment="cifar_cutout"; DeVries & Taylor 2017): the square's side for CIFAR-10, and
# its fill, the CIFAR-10 mean pixel in 0..255 -- what the models' "cifar" normalisation
# (_builder.PREPROCESSING) maps to about 0, as the paper's zero mask after normalisation.
# Here, not in training.pipeline, so the TensorFlow-free GPU route (training/gpu) shares them.
CUTOUT_SIZE = 16
CUTOUT_FILL = (125, 123, 114)

VALID = {
    "weight_decay_scope": ("kernels", "all"),
    "lr_schedule": ("piecewise", "cosine", "onecycle"),
    "boundary_unit": ("steps", "epochs", "fraction"),
    "augment": ("cifar", "cifar_cutout", "imagenet", "none"),
    "cache": ("auto", "memory", "none"),
    "mixed_precision": ("none", "mixed_float16", "mixed_bfloat16"),
}


def validate(cfg: TrainConfig) -> None:
    """Raise ValueError naming the bad value and the valid ones."""
    for field, choices in VALID.items():
        value = getattr(cfg, field)
        if value not in choices:
            raise ValueError(
                f"Invalid {field}={value!r} in config {cfg.name!r}; valid: {', '.join(choices)}"
            )
    for field in ("epochs", "batch_size"):
        if getattr(cfg, field) < 1:
            raise ValueError(f"{field} must be >= 1, got {getattr(cfg, field)}")
    if cfg.learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0, got {cfg.learning_rate}")
    if not 0.0 <= cfg.ema_momentum < 1.0:
        raise ValueError(f"ema_momentum must be in [0, 1) (0: no weight averaging; 0.999 is usual), "
                         f"got {cfg.ema_momentum}")
    if cfg.ema_batch_norm_batches < 0:
        raise ValueError(f"ema_batch_norm_batches must be >= 0 (0: keep the live weights' batch-norm "
                         f"statistics), got {cfg.ema_batch_norm_batches}")
    if cfg.total_steps is not None and cfg.total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {cfg.total_steps}")


def model_kwargs(spec, cfg: TrainConfig, num_classes: int, size: int,
                 overrides: Optional[dict] = None) -> dict:
    """The builder arguments of a run: its data's classes and size, the recipe's regularisers, then the
    run's own overrides (TensorFlow-free, so the JAX route of training/gpu/ uses it too)."""
    kw: dict = {"classes": int(num_classes)}
    if tuple(spec.input_shape[:2]) != (size, size):
        kw["input_shape"] = (size, size, 3)
    if cfg.dropout_rate is not None and spec.family in ("densenet", "resnetv2"):
        kw["dropout_rate"] = cfg.dropout_rate
    if cfg.drop_path_rate is not None:
        kw["drop_path_rate"] = cfg.drop_path_rate
    if cfg.zero_init_residual is not None:
        kw["zero_init_residual"] = cfg.zero_init_residual
    kw.update(overrides or {})
    return kw
