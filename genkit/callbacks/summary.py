"""The model summary at the start of training: each network with its parameters, trainable and
frozen, and the totals. (Lightning's own prints a FLOPs column that reads 0 without an example
input, which says nothing.)"""

from typing import Any

from lightning.pytorch.callbacks import ModelSummary
from lightning.pytorch.utilities.model_summary.model_summary import get_human_readable_count
from rich.console import Console
from rich.table import Table

# the columns of Lightning's summary data that genkit shows
COLUMNS = (" ", "Name", "Type", "Params")


class NetworkSummary(ModelSummary):
    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        columns = {name: values for name, values in summary_data if name in COLUMNS}
        table = Table(header_style="bold")
        for name in columns:
            table.add_column(name, justify="right" if name == "Params" else "left")
        for row in zip(*columns.values(), strict=True):
            table.add_row(*row)
        frozen = total_parameters - trainable_parameters
        table.caption = (
            f"{get_human_readable_count(trainable_parameters).strip()} trainable, "
            f"{get_human_readable_count(frozen).strip()} frozen "
            f"({100 * frozen / max(total_parameters, 1):.0f}%), {model_size:.1f} MB"
        )
        Console().print(table)
