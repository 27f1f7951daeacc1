"""What happened to the batch files since the last look: new, replaced, vanished, renamed (no Dagster here).

Policy (README, "Reliability and operations"): a registered batch whose file left the incoming folder is *retired*: its
partition is removed, so training, metrics, the index and the published table stop serving its products.
A vanished batch whose products (most of them, by ``nm``) arrive in a new file was *renamed* (re-exported
under another name): the old partition is retired and the new file registered as any new batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

RENAME_SHARE = 0.5  # a new file holding more than this share of a vanished batch's products is its successor


@dataclass(frozen=True)
class BatchChanges:
    """Batch names (file stems): ``new`` files, ``changed`` (replaced since the last look), ``vanished``
    registered batches without a file, and ``renamed``: vanished batch → the new batch holding its products."""

    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)

    def retirement_lines(self, products_of: Callable[[str], set[int]]) -> list[str]:
        """One log line per vanished batch, saying what happens to it and its products."""
        lines = []
        for batch in self.vanished:
            count = len(products_of(batch))
            if batch in self.renamed:
                lines.append(
                    f"{batch}: file gone, re-exported as {self.renamed[batch]}.parquet; partition {batch} "
                    f"retired ({count} products no longer served from it), {self.renamed[batch]} registered"
                )
            else:
                lines.append(
                    f"{batch}: file gone; partition retired, its {count} products are no longer served"
                )
        return lines


def batch_changes(
    registered: Iterable[str],
    files: Mapping[str, str],
    seen: Mapping[str, str],
    products_of: Callable[[str], set[int]],
) -> BatchChanges:
    """Compare the registered batches with the batch files now present.

    ``files`` maps each file's batch name to its signature (size and modification time), ``seen`` the
    signatures of the last look (a registered batch missing there counts as unchanged); ``products_of(batch)``
    gives the ``nm`` values of a batch (its accepted products when registered, the file's otherwise; empty
    when unknown), used to recognise a renamed file.
    """
    registered = set(registered)
    new = sorted(name for name in files if name not in registered)
    changed = sorted(
        name for name in files if name in registered and seen.get(name, files[name]) != files[name]
    )
    vanished = sorted(registered - set(files))
    renamed = {}
    for batch in vanished:
        products = products_of(batch)
        if not products:
            continue
        overlaps = {name: len(products & products_of(name)) for name in new}
        best = max(sorted(overlaps), key=overlaps.__getitem__, default=None)
        if best is not None and overlaps[best] > RENAME_SHARE * len(products):
            renamed[batch] = best
    return BatchChanges(new, changed, vanished, renamed)
