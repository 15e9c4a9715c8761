"""Git's clean filter for notebooks: outputs and execution counts never reach git.

JupyterLab saves outputs into the .ipynb files as you work, so without this every notebook you
ran shows as modified and `git pull` refuses to overwrite it. `make lab` registers the filter
(.gitattributes names it); git then compares and commits notebooks as if they were freshly
stripped. Standard library only: git may run it with any python3.

    python3 workbook/strip.py < notebook.ipynb > stripped.ipynb
"""
import json
import sys


def strip(nb: dict) -> dict:
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell["metadata"] = {k: v for k, v in cell.get("metadata", {}).items()
                            if k in ("tags", "editable", "deletable")}
    info = nb.get("metadata", {}).get("language_info")
    if isinstance(info, dict):  # the kernel fills in its version; keep only the language
        nb["metadata"]["language_info"] = {"name": info.get("name", "python")}
    nb.get("metadata", {}).pop("widgets", None)
    if "kernelspec" in nb.get("metadata", {}):  # JupyterLab writes the name of the kernel it ran
        nb["metadata"]["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python",
                                        "name": "python3"}
    return nb


def main() -> None:
    text = sys.stdin.read()
    try:
        nb = json.loads(text)
    except ValueError:  # not a notebook git can read as JSON: pass it through untouched
        sys.stdout.write(text)
        return
    # Sorted keys, as JupyterLab saves them: a notebook you only ran then matches the committed one.
    sys.stdout.write(json.dumps(strip(nb), indent=1, sort_keys=True, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
