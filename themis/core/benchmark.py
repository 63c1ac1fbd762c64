"""`BenchmarkSpec`: a benchmark described once (one dataset, its slices, prompt variants with
stable ids, few-shot examples from named splits) and the `ExperimentSpec` that runs it.

A slice is a named part of the dataset's rows, reported as its own row: the rows whose fields
equal `where` (a list: any of them), then `sample` of them drawn with `sample_seed`, then the
first `limit`. It compiles to a dataset of the slice's name; without slices the whole dataset is
one. A prompt variant's `id` is its stable id in reports (the compiled prompt's name); its
few-shot examples are `k` rows of a named split (`splits`), drawn per case with a seed, never
the case itself. Pure: the dataset's rows are read when a config is loaded
(`themis.app.config.loading`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from attrs import field, frozen

from themis.core.spec import (
    DatasetSpec,
    ExperimentSpec,
    FewShotSpec,
    JudgeSpec,
    MetricSpec,
    ModelSpec,
    ParserSpec,
    PromptSpec,
    ReducerSpec,
)
from themis.core.validation import (
    check_json,
    check_non_empty,
    check_optional_positive_int,
    check_positive_int,
    check_unique,
    unknown_name,
)

__all__ = ["BenchmarkSpec", "FewShotSplit", "PromptVariant", "SliceSpec"]


def _mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return dict(value or {})


@frozen
class SliceSpec:
    """A named part of a benchmark's rows: `where`, then a seeded `sample`, then a `limit`."""

    name: str = field(validator=check_non_empty)
    where: Mapping[str, Any] = field(factory=dict, converter=_mapping, validator=check_json)
    sample: int | None = field(default=None, validator=check_optional_positive_int)
    sample_seed: int = 0
    limit: int | None = field(default=None, validator=check_optional_positive_int)


@frozen
class FewShotSplit:
    """`k` few-shot examples per case from the benchmark's split named `split`, drawn with
    `seed`."""

    split: str = field(validator=check_non_empty)
    k: int = field(validator=check_positive_int)
    seed: int = 0


@frozen
class PromptVariant:
    """A prompt variant: its stable `id`, a Jinja2 template over a case's fields (and
    `examples` with few-shot), an optional system message."""

    id: str = field(validator=check_non_empty)
    template: str = field(validator=check_non_empty)
    system: str | None = None
    few_shot: FewShotSplit | None = None


def _slices(value: Iterable[SliceSpec]) -> tuple[SliceSpec, ...]:
    return tuple(value)


def _variants(value: Iterable[PromptVariant]) -> tuple[PromptVariant, ...]:
    return tuple(value)


def _datasets(value: Iterable[DatasetSpec]) -> tuple[DatasetSpec, ...]:
    return tuple(value)


def _models(value: Iterable[ModelSpec]) -> tuple[ModelSpec, ...]:
    return tuple(value)


def _metrics(value: Iterable[MetricSpec]) -> tuple[MetricSpec, ...]:
    return tuple(value)


def _judges(value: Iterable[JudgeSpec]) -> tuple[JudgeSpec, ...]:
    return tuple(value)


def _ks(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


@frozen(kw_only=True)
class BenchmarkSpec:
    """A benchmark: `dataset` sliced by `slices`, asked through `prompt_variants` of `models`,
    parsed and scored like an experiment (`experiment()` is the `ExperimentSpec` it runs as)."""

    name: str = field(validator=check_non_empty)
    seed: int
    dataset: DatasetSpec
    models: tuple[ModelSpec, ...] = field(converter=_models)
    prompt_variants: tuple[PromptVariant, ...] = field(converter=_variants)
    slices: tuple[SliceSpec, ...] = field(default=(), converter=_slices)
    splits: tuple[DatasetSpec, ...] = field(default=(), converter=_datasets)
    samples: int = field(default=1, validator=check_positive_int)
    parser: ParserSpec = field(factory=ParserSpec)
    metrics: tuple[MetricSpec, ...] = field(
        default=(MetricSpec(name="exact_match"),), converter=_metrics
    )
    reducer: ReducerSpec | None = None
    pass_at_k: tuple[int, ...] = field(default=(), converter=_ks)
    majority_at_k: tuple[int, ...] = field(default=(), converter=_ks)
    judges: tuple[JudgeSpec, ...] = field(default=(), converter=_judges)

    def __attrs_post_init__(self) -> None:
        check_unique("slices", [item.name for item in self.slices])
        check_unique("prompt_variants", [variant.id for variant in self.prompt_variants])
        check_unique("splits", [split.name for split in self.splits])
        if not self.prompt_variants:
            raise ValueError("prompt_variants: at least one is required")
        names = [split.name for split in self.splits]
        for index, variant in enumerate(self.prompt_variants):
            if variant.few_shot is not None and variant.few_shot.split not in names:
                why = unknown_name("split", variant.few_shot.split, names)
                raise ValueError(f"prompt_variants[{index}].few_shot.split: {why}")

    @property
    def slice_names(self) -> tuple[str, ...]:
        """The slices' names, as report rows name them (the dataset's name without slices)."""
        return tuple(item.name for item in self.slices) or (self.dataset.name,)

    @property
    def prompt_variant_ids(self) -> tuple[str, ...]:
        return tuple(variant.id for variant in self.prompt_variants)

    def experiment(self) -> ExperimentSpec:
        """The experiment that runs the benchmark: a dataset per slice, a prompt per variant."""
        base = self.dataset
        datasets = tuple(
            attrs.evolve(
                base,
                name=item.name,
                where={**base.where, **item.where},
                sample=base.sample if item.sample is None else item.sample,
                sample_seed=base.sample_seed if item.sample is None else item.sample_seed,
                limit=base.limit if item.limit is None else item.limit,
            )
            for item in self.slices
        ) or (base,)
        splits = {split.name: split for split in self.splits}
        prompts = tuple(
            PromptSpec(
                name=variant.id,
                template=variant.template,
                system=variant.system,
                few_shot=None
                if variant.few_shot is None
                else FewShotSpec(
                    examples=splits[variant.few_shot.split],
                    k=variant.few_shot.k,
                    seed=variant.few_shot.seed,
                ),
            )
            for variant in self.prompt_variants
        )
        return ExperimentSpec(
            seed=self.seed,
            samples=self.samples,
            datasets=datasets,
            models=self.models,
            prompts=prompts,
            parser=self.parser,
            metrics=self.metrics,
            name=self.name,
            reducer=self.reducer,
            pass_at_k=self.pass_at_k,
            majority_at_k=self.majority_at_k,
            judges=self.judges,
        )
