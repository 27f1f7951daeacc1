"""Markdown tables for asset metadata."""


def markdown_table(rows: list[dict], digits: int = 4) -> str:
    if not rows:
        return "_empty_"
    columns = list(rows[0])

    def cell(value) -> str:  # a "|" in a value (a title) would end its cell
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
