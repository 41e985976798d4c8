"""TAO's optimiser: AdamW with three parameter groups, and its LR schedules.

Groups (names relative to the model, matched as substrings like TAO):

* parameters matching ``model.backbone_names`` (default ``backbone.0``, ``bert``) -> ``lr_backbone``
* parameters matching ``model.linear_proj_names`` (``reference_points``,
  ``sampling_offsets``) -> ``lr * lr_linear_proj_mult``
* everything else -> ``lr``

``train.freeze`` lists module-name prefixes whose parameters do not train.
Schedules step once per epoch: ``MultiStep`` (``lr_steps``, ``lr_decay``) or
``StepLR`` (``lr_step_size``, ``lr_decay``). ``warmup_steps`` (our addition,
default 0 = TAO) ramps every group linearly from 0 over the first steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import SpecError


def _matches(name: str, keywords) -> bool:
    return any(k and k in name for k in keywords)


def apply_freeze(model: nn.Module, prefixes) -> list[str]:
    """Freeze parameters under the given module-name prefixes; returns the frozen names.

    A prefix that matches nothing is a spec mistake (e.g. a typo) and is reported.
    """
    prefixes = [p for p in (prefixes or []) if p]
    frozen, used = [], set()
    for name, param in model.named_parameters():
        for prefix in prefixes:
            if name == prefix or name.startswith(prefix + "."):
                param.requires_grad_(False)
                frozen.append(name)
                used.add(prefix)
    unknown = [p for p in prefixes if p not in used]
    if unknown:
        tops = sorted({n.split(".")[0] for n, _ in model.named_parameters()})
        raise SpecError(f"train.freeze: {unknown} match no parameters of the model; "
                        f"top-level modules are {tops}")
    return frozen


@dataclass
class ParamGroups:
    groups: list[dict]
    counts: dict[str, int]


def build_param_groups(model: nn.Module, *, lr: float, lr_backbone: float, lr_linear_proj_mult: float,
                       backbone_names, linear_proj_names, weight_decay: float) -> ParamGroups:
    main, backbone, linear = [], [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if _matches(name, backbone_names):
            backbone.append(param)
        elif _matches(name, linear_proj_names):
            linear.append(param)
        else:
            main.append(param)
    groups = [{"params": main, "lr": lr, "name": "main"},
              {"params": backbone, "lr": lr_backbone, "name": "backbone"},
              {"params": linear, "lr": lr * lr_linear_proj_mult, "name": "linear_proj"}]
    for group in groups:
        group["weight_decay"] = weight_decay
    counts = {g["name"]: sum(p.numel() for p in g["params"]) for g in groups}
    return ParamGroups([g for g in groups if g["params"]], counts)


def build_optimizer(model: nn.Module, model_cfg, optim_cfg) -> tuple[torch.optim.Optimizer, ParamGroups]:
    if str(optim_cfg.optimizer).lower() != "adamw":
        raise SpecError(f"train.optim.optimizer: '{optim_cfg.optimizer}' is not supported; allowed: AdamW")
    groups = build_param_groups(model, lr=optim_cfg.lr, lr_backbone=optim_cfg.lr_backbone,
                                lr_linear_proj_mult=optim_cfg.lr_linear_proj_mult,
                                backbone_names=model_cfg.backbone_names,
                                linear_proj_names=model_cfg.linear_proj_names,
                                weight_decay=optim_cfg.weight_decay)
    if not groups.groups:
        raise SpecError("train.freeze leaves no trainable parameters")
    return torch.optim.AdamW(groups.groups, lr=optim_cfg.lr, weight_decay=optim_cfg.weight_decay), groups


def build_scheduler(optimizer: torch.optim.Optimizer, optim_cfg):
    kind = str(optim_cfg.lr_scheduler)
    if kind == "MultiStep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(optim_cfg.lr_steps),
                                                    gamma=optim_cfg.lr_decay)
    if kind == "StepLR":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=int(optim_cfg.lr_step_size),
                                               gamma=optim_cfg.lr_decay)
    raise SpecError(f"train.optim.lr_scheduler: '{kind}' is not supported; allowed: MultiStep, StepLR")


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up multiplier for optimiser step ``step`` (0-based)."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return 1.0
    return float(step + 1) / float(warmup_steps)
