"""Training configuration: one dataclass, named presets, ``key=value`` overrides (no eval)."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field, fields, replace

from .augment import AugmentConfig
from .errors import HccrError
from .preprocess import scaled_blur


@dataclass
class TrainConfig:
    preset: str = ""  # the preset this config began as (a resumed run is checked against it)
    model: str = "charnet-s"
    model_args: dict = field(default_factory=dict)
    image_size: int = 64
    ink: str = "high"  # "high": ink 1 on 0 (hccr); "dark": ink 0 on white 1 (the paper's input)
    stretch: bool = False  # paper: resize the character box to the square, ignoring its aspect ratio
    blur_ksize: int = 0  # training-time Gaussian blur (paper models 2 and 3)
    blur_sigma: float = 0.0
    loss: str = "ce"  # "focal" (paper) or "ce"
    label_smoothing: float = 0.0
    focal_gamma: float = 4.0
    focal_alpha: float = 0.25
    aux_weights: tuple[float, ...] = (0.025, 0.05, 0.5, 0.2)
    optimizer: str = "adamw"  # "adam" | "adamw" | "sgd"
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 20
    warmup_epochs: float = 0.0
    schedule: str = "constant"  # "constant" | "cosine"
    grad_clip: float = 0.0
    val_fraction: float = 0.05  # held out of the training split when the store has no validation split
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    amp: bool = True  # bf16 autocast on CPUs that support it and on CUDA (fp16 where bf16 is missing)
    amp_probe: bool = True  # on a CPU, time a few steps in bf16 and fp32 first and train in the faster one
    channels_last: bool = True
    seed: int = 0
    limit_steps: int = 0  # stop each epoch after this many steps (0 = full epochs); for smoke runs and benches
    steps: int = 0  # total optimizer steps (0 = epochs x steps per epoch); schedules then follow steps, not epochs
    minutes: float = 0.0  # train for about this much wall time: steps are set from the speed measured over the first 60
    checkpoint_minutes: float = 10.0  # also save the resume state mid-epoch this often (wall time)
    mixup: float = 0.0  # Beta(a, a) of mixup (e.g. 0.2): each batch blended with a shuffled copy of itself, both labels weighted; 0 = off
    ema: float = 0.0  # decay of an exponential moving average of the weights (e.g. 0.999; 0 = off): validation and the checkpoints use the average
    init: str = ""  # start from this checkpoint or shipped model (fine-tuning; rows carried over by character)
    freeze_epochs: int = 0  # with init: train only the classifier heads for this many epochs
    init_keep_classes: bool = False  # with init: keep the source's characters, add the store's; only their rows learn
    init_keep_size: bool = False  # with init: train at image_size, not the source's (size-free networks: resnet-lean)
    teachers: tuple[str, ...] = ()  # distillation: checkpoints whose ensemble the student learns from
    teacher_weights: tuple[float, ...] = ()  # their ensemble weights (default 0.3,0.2,0.5 for three, else equal)
    teacher_crops: int = 5  # the teachers predict each augmented view from this many crops
    distill_temperature: float = 2.0
    distill_alpha: float = 0.7  # weight of the teachers' soft targets; 1 - alpha on the hard labels
    domain_loss: float = 0.0  # weight of the domain-adversarial loss (hccr.domain): features that cannot tell synthetic writers from real; 0 = off
    real_writers: str = "[0-9]*"  # glob of the store's real writers' names (CASIA's are numbered; hccr synth's are PREFIX0000)

    def validate(self) -> TrainConfig:
        if self.ink not in ("high", "dark"):
            raise HccrError(f"ink must be 'high' or 'dark', not {self.ink!r}")
        if self.loss not in ("focal", "ce"):
            raise HccrError(f"loss must be 'focal' or 'ce', not {self.loss!r}")
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise HccrError(f"optimizer must be adam, adamw or sgd, not {self.optimizer!r}")
        if not 0.0 <= self.ema < 1.0:
            raise HccrError(f"ema must be a decay in [0, 1), e.g. 0.999, not {self.ema}")
        if not 0.0 <= self.mixup <= 10.0:
            raise HccrError(f"mixup must be a Beta parameter in [0, 10] (e.g. 0.2; 0 = off), not {self.mixup}")
        if self.schedule not in ("constant", "cosine"):
            raise HccrError(f"schedule must be constant or cosine, not {self.schedule!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.steps < 0 or self.freeze_epochs < 0:
            raise HccrError("epochs and batch size must be positive, steps and freeze_epochs >= 0")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise HccrError(f"lr must be a number above 0, not {self.lr}")
        if not 8 <= self.image_size <= 2048:
            raise HccrError(f"image_size must be 8-2048 px, not {self.image_size}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise HccrError(f"label_smoothing must be in [0, 1) (e.g. 0.1), not {self.label_smoothing}")
        if not 0 <= self.seed < 2**32:
            raise HccrError(f"seed must be a whole number from 0 to 2**32 - 1, not {self.seed}")
        for name in ("warmup_epochs", "grad_clip", "weight_decay", "val_fraction"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0) or (name == "val_fraction" and value >= 1):
                raise HccrError(f"{name} must be a number >= 0{' and < 1' if name == 'val_fraction' else ''} "
                                f"(0 = off), not {value}")
        if self.minutes < 0:
            raise HccrError(f"minutes must be >= 0 (0 = off), not {self.minutes}")
        if self.teachers and not (0.0 <= self.distill_alpha <= 1.0 and self.distill_temperature > 0):
            raise HccrError("distill_alpha must be in [0, 1] and distill_temperature > 0")
        if not 0.0 <= self.domain_loss <= 10.0:
            raise HccrError(f"domain_loss must be a weight in [0, 10] (e.g. 0.3; 0 = off), not {self.domain_loss}")
        if self.teacher_crops not in (1, 5):
            raise HccrError(f"teacher_crops must be 1 or 5, not {self.teacher_crops}")
        if self.freeze_epochs and not self.init:
            raise HccrError("freeze_epochs needs init: freezing a randomly initialised backbone teaches nothing")
        if self.init_keep_classes and not self.init:
            raise HccrError("init_keep_classes needs init: it keeps the characters of the model fine-tuning starts from")
        if self.init_keep_size and not self.init:
            raise HccrError("init_keep_size needs init: it keeps image_size instead of the source model's")
        self.augment.validate()
        return self


# The paper's blur variants (at 256 px, OpenCV kernel size and sigma).
PAPER_BLURS = {1: (0, 0.0), 2: (3, 20.0), 3: (7, 50.0)}


def _paper(k: int) -> TrainConfig:
    ks, sigma = PAPER_BLURS[k]
    return TrainConfig(model="charnet", image_size=256, ink="dark", stretch=True, blur_ksize=ks, blur_sigma=sigma,
                       loss="focal", focal_gamma=4.0, focal_alpha=0.25, aux_weights=(0.025, 0.05, 0.5, 0.2),
                       optimizer="adam", lr=1e-3, batch_size=128, epochs=20, val_fraction=0.05, amp=False,
                       channels_last=True)


def _fast(k: int) -> TrainConfig:
    ks, sigma = PAPER_BLURS[k]
    if ks:
        ks, sigma = scaled_blur(ks, sigma, 256, 64)
    return TrainConfig(model="charnet-s", image_size=64, blur_ksize=ks, blur_sigma=sigma, loss="ce",
                       label_smoothing=0.1, aux_weights=(0.1, 0.1, 0.2, 0.3), optimizer="adamw", lr=3e-3,
                       weight_decay=5e-4, batch_size=128, epochs=40, warmup_epochs=1.0, schedule="cosine",
                       grad_clip=5.0, val_fraction=0.05,
                       augment=AugmentConfig(rotation=10, shear=0.2, scale=(0.85, 1.08), aspect=0.12,
                                             translate=0.06, elastic=0.03),
                       amp=True, channels_last=True, seed=k)


def _gb2312_synth() -> TrainConfig:
    """``gb2312-synth``: synthetic handwriting only (scripts/train_gb2312_synth.sh), 8,000 steps."""
    cfg = _fast(1)
    cfg.model = "resnet-lean"
    cfg.model_args = {}
    cfg.aux_weights = ()
    cfg.batch_size = 256
    cfg.lr = 2e-3
    cfg.warmup_epochs = 0.2
    cfg.steps = 8000  # 2.05 M samples: about 72 min at ~475 img/s on 2 CPU cores (bf16)
    cfg.seed = 2312
    return cfg


def _gb2312() -> TrainConfig:
    """The shipped 6,763-class recognizer (scripts/train_gb2312.sh): ``gb2312-synth``'s network and
    optimizer, started from it, on real handwriting of every level-1 character (220 writers'
    trajectories drawn with hccr's pen, casia-hwdb-22's scans) plus synthetic handwriting of all
    6,763; an average of the weights (validation and checkpoints read it, so a run cut short still
    ships a usable model), and the variation scans add to a pen (blur, grain, paler ink, heavier or
    lighter lines). Sized by steps, checkpointed by wall time."""
    cfg = _gb2312_synth()
    cfg.warmup_epochs = 0.05
    cfg.steps = 10000  # 2.56 M samples, about 2.3 passes over the mix
    cfg.ema = 0.999
    cfg.augment = replace(cfg.augment, blur=0.3, noise=0.03, ink=0.3, pen=0.2)
    return cfg


PRESETS: dict[str, TrainConfig] = {
    **{f"paper-{k}": _paper(k) for k in (1, 2, 3)},
    **{f"fast-{k}": _fast(k) for k in (1, 2, 3)},
    "gb2312": _gb2312(),
    "gb2312-synth": _gb2312_synth(),
}


def get_preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise HccrError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    return replace(PRESETS[name], preset=name)


def _coerce(tp: typing.Any, text: str, key: str) -> typing.Any:
    origin = typing.get_origin(tp)
    try:
        if tp is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if tp in (int, float, str):
            return tp(text)
        if origin is tuple:
            inner = typing.get_args(tp)[0]
            return tuple(inner(v) for v in text.split(",") if v)
        if tp is dict or origin is dict:
            out = {}
            for item in text.split(","):
                k, _, v = item.partition(":")
                out[k] = _number(v)
            return out
    except ValueError:
        raise HccrError(f"--set {key}={text}: cannot read {text!r} as {getattr(tp, '__name__', tp)}") from None
    raise HccrError(f"--set {key}: unsupported type {tp}")


def _number(v: str) -> typing.Any:
    if v == "":
        return ()  # `model_args.conv_stages=` : an empty list
    if v.lower() in ("true", "false"):
        return v.lower() == "true"  # `model_args.aux=false`
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    if "," in v:
        return tuple(_number(x) for x in v.split(",") if x)
    return v


def apply_overrides(cfg: TrainConfig, items: list[str]) -> TrainConfig:
    """Apply ``key=value`` strings; ``augment.rotation=5`` reaches into the augmentation config and
    ``model_args.widths=16,32,64,128`` sets one architecture argument (numbers; commas make a tuple).
    ``model=NAME`` naming another architecture drops the preset's ``model_args`` (give any
    ``model_args.*`` for the new one after it)."""
    hints = typing.get_type_hints(TrainConfig)
    aug_hints = typing.get_type_hints(AugmentConfig)
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise HccrError(f"--set expects key=value, got {item!r}")
        key = key.strip().replace("-", "_")
        if key.startswith("augment."):
            sub = key.split(".", 1)[1]
            if sub not in aug_hints:
                raise HccrError(f"--set {key}: unknown augmentation field; known: {', '.join(aug_hints)}")
            cfg.augment = replace(cfg.augment, **{sub: _coerce(aug_hints[sub], value, key)})
        elif key.startswith("model_args.") and key != "model_args.":
            cfg.model_args = {**cfg.model_args, key.split(".", 1)[1]: _number(value.strip())}
        elif key in hints and key != "augment":
            if key == "model" and value.strip() != cfg.model:
                cfg.model_args = {}  # the preset's architecture arguments belong to its own model
            setattr(cfg, key, _coerce(hints[key], value, key))
        else:
            raise HccrError(f"--set {key}: unknown config field; known: {', '.join(f.name for f in fields(TrainConfig))}")
    return cfg.validate()


def config_to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)


def config_from_dict(d: dict) -> TrainConfig:
    d = dict(d)
    aug = d.pop("augment", {}) or {}
    if "scale" in aug:
        aug["scale"] = tuple(aug["scale"])
    for key in ("aux_weights", "teachers", "teacher_weights"):
        if key in d:
            d[key] = tuple(d[key])
    known = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in d.items() if k in known}, augment=AugmentConfig(**aug))
