"""The Alembic migration workbook. In a notebook: from workbook import setup, check, hint."""


def setup(name: str, quiet: bool = False) -> str:
    from workbook import notebook
    return notebook.setup(name, quiet)


def check(name: str):
    from workbook import notebook
    return notebook.check(name)


def hint(name: str, number: int | None = None) -> None:
    from workbook import notebook
    notebook.hint(name, number)


def url() -> str:
    from workbook import db
    return db.url()
