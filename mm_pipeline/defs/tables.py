"""Markdown tables for asset metadata."""


def markdown_table(rows: list[dict], digits: int = 4) -> str:
    if not rows:
        return "_empty_"
    columns = list(rows[0])

    def cell(value) -> str:
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
