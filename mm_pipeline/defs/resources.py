"""Resources shared by every area: pipeline settings (paths, sizes, model source) and W&B logging."""

import os
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
from dagster_wandb import wandb_resource
from dagster_wandb.resources import WANDB_CLOUD_HOST
from pydantic import ValidationError, ValidationInfo, field_validator

from mm_pipeline.catalog.contract import BATCH_SUFFIX, BatchFileError, batch_name
from mm_pipeline.defs.partitions import catalogue_batches
from mm_pipeline.environment import DEFAULT_WORKERS, SETTINGS_VARIABLES, read_workers
from mm_pipeline.inference.encoders import AUTO, VARIANT_ORDER
from mm_pipeline.layout import Layout
from mm_pipeline.model.device import DEVICES
from mm_pipeline.model.pairs import BatchFiles
from mm_pipeline.prep.images import DEFAULT_MAX_PIXELS
from mm_pipeline.tracking import PLACEHOLDER_KEY, TrackingConfigError, wandb_setup

# field → the environment variable that sets it (the table: mm_pipeline.environment; README, "Configuration")
ENV_VARIABLES = SETTINGS_VARIABLES
WANDB_PLACEHOLDER_KEY = PLACEHOLDER_KEY  # offline/disabled W&B still wants a key-shaped string
MODEL_POOL = "heavy_compute"  # the concurrency pool of the torch and ONNX steps (model assets, embeddings)


class PipelineSettings(dg.ConfigurableResource):
    """Where data lives and how big things are. Defaults come from ``MM_*`` environment variables.

    Values are checked when the resource is built, so a run configured with, say, 0 workers or an unknown ONNX
    variant in the launchpad fails as it starts, naming the field and its variable, instead of after training.
    """

    data_dir: str = "data"
    incoming_dir: str = "data/sample/batches"
    images_dir: str = "data/sample/images"
    image_size: int = 96
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    ruclip_dir: str = ""
    ruclip_name: str = ""
    workers: int = DEFAULT_WORKERS  # the CPU count
    eval_fraction: float = 0.3
    train_epochs: int = 0  # 0: the recipe's own number of epochs
    compact_vocab_size: int = 6000
    # auto (the most exact variant that passed parity and runs here, unless another is clearly faster), int8,
    # int8-static, fp32 or bf16
    onnx_variant: str = "auto"
    train_batch_size: int = 0  # 0: the recipe's own batch size
    device: str = "auto"  # torch and ONNX Runtime: auto, cpu or cuda (mm_pipeline.model.device)

    @field_validator("workers", "image_size", "max_image_pixels", "compact_vocab_size")
    @classmethod
    def _positive(cls, value: int, info: ValidationInfo) -> int:
        return _checked(value, info, value >= 1, "a positive integer")

    @field_validator("train_epochs", "train_batch_size")
    @classmethod
    def _recipe_or_positive(cls, value: int, info: ValidationInfo) -> int:
        return _checked(value, info, value >= 0, "0 (the recipe's own) or a positive integer")

    @field_validator("eval_fraction")
    @classmethod
    def _fraction(cls, value: float, info: ValidationInfo) -> float:
        return _checked(value, info, 0 < value < 1, "a fraction strictly between 0 and 1")

    @field_validator("onnx_variant")
    @classmethod
    def _variant(cls, value: str, info: ValidationInfo) -> str:
        return _checked(
            value, info, value in (AUTO, *VARIANT_ORDER), f"one of {', '.join((AUTO, *VARIANT_ORDER))}"
        )

    @field_validator("device")
    @classmethod
    def _device(cls, value: str, info: ValidationInfo) -> str:
        return _checked(value, info, value in DEVICES, f"one of {', '.join(DEVICES)}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "PipelineSettings":
        """Settings from ``MM_*`` variables (see ``ENV_VARIABLES``); unset or empty ones keep the defaults.
        Raises ValueError naming the variable whose value is not of its field's type or out of its range
        (``MM_WORKERS``: not a positive integer, :func:`mm_pipeline.environment.read_workers`)."""
        values = {"workers": read_workers(env)}
        for field, variable in ENV_VARIABLES.items():
            if not env.get(variable) or field == "workers":
                continue
            kind = cls.model_fields[field].annotation
            try:
                values[field] = kind(env[variable])
            except ValueError:
                raise ValueError(f"{variable}={env[variable]!r} is not a valid {kind.__name__}") from None
        try:
            return cls(**values)
        except ValidationError as exc:
            messages = (error["msg"].removeprefix("Value error, ") for error in exc.errors())
            raise ValueError("; ".join(messages)) from None

    @property
    def layout(self) -> Layout:
        return Layout(Path(self.data_dir))

    def batch_file(self, batch: str) -> Path:
        return Path(self.incoming_dir) / f"{batch}{BATCH_SUFFIX}"

    def batch_names(self) -> list[str]:
        """Batch files currently in the incoming folder, in order; each is one partition."""
        return self.incoming_batches()[0]

    def incoming_batches(self) -> tuple[list[str], list[BatchFileError]]:
        """Batch names in the incoming folder (``*.parquet`` files or dataset folders, hidden ones left
        out), in order, and the files refused because their name cannot be a partition key (``batch_name``)."""
        names, refused = [], []
        for path in Path(self.incoming_dir).glob(f"*{BATCH_SUFFIX}"):
            if path.name.startswith("."):
                continue
            try:
                names.append(batch_name(path))
            except BatchFileError as problem:
                refused.append(problem)
        return sorted(names), sorted(refused, key=str)


def _checked(value, info: ValidationInfo, valid: bool, expected: str):
    """``value`` when ``valid``, else ValueError naming the field, its ``MM_*`` variable and what it must be."""
    if not valid:
        raise ValueError(f"{info.field_name}={value!r} ({ENV_VARIABLES[info.field_name]}) is not {expected}")
    return value


def materialized_batches(settings: PipelineSettings, instance: dg.DagsterInstance) -> list[BatchFiles]:
    """Registered batches whose cleaned text and image tensors exist on disk, in partition order."""
    layout = settings.layout
    batches = [
        BatchFiles(name, layout.cleaned_text(name), layout.image_tensors(name))
        for name in sorted(instance.get_dynamic_partitions(catalogue_batches.name))
    ]
    return [b for b in batches if b.cleaned_text.exists() and b.image_tensors.exists()]


@dg.resource(
    required_resource_keys={"settings"},
    description="Weights & Biases through dagster-wandb: offline unless WANDB_MODE says otherwise, runs under "
    "WANDB_DIR (default <MM_DATA_DIR>/wandb); online without WANDB_API_KEY fails at once.",
)
def wandb_tracking(context: dg.InitResourceContext) -> dict:
    """dagster-wandb's client (``sdk``, ``api``, ``host``) plus ``mode`` and ``dir``, the folder runs go to."""
    try:
        setup = wandb_setup(os.environ, context.resources.settings.data_dir)
    except TrackingConfigError as exc:
        raise dg.Failure(str(exc)) from None
    os.environ["WANDB_MODE"] = setup.mode  # read by wandb.login and wandb.init
    setup.dir.mkdir(parents=True, exist_ok=True)
    host = os.environ.get("WANDB_BASE_URL") or WANDB_CLOUD_HOST
    client = wandb_resource.resource_fn(
        dg.build_init_resource_context(config={"api_key": setup.api_key, "host": host})
    )
    return {**client, "mode": setup.mode, "dir": str(setup.dir)}


def build_wandb_resource() -> dg.ResourceDefinition:
    """The W&B resource (:func:`wandb_tracking`); its configuration is read when a run initializes it."""
    return wandb_tracking
