"""Bootstrap of the silver job where Spark runs it as a script: AWS Glue, EMR Serverless.

``python -m resources.spark.aws_jobs package`` writes this file as
``lakehouse_silver_job.py`` beside the code archive ``lakehouse-silver.zip`` (the
``lakehouse_assets`` and ``resources`` packages, ``config/`` and ``contracts/``). Glue
(``--extra-py-files``) and Spark (``--py-files``, ``spark.submit.pyFiles``) put the
archive on ``sys.path`` as a zip, but the settings read ``config/lakehouse.yaml`` and the
contracts as files beside the packages, which a zip on ``sys.path`` does not give. So
this script finds the archive (on ``sys.path``, in the working directory, beside itself,
or downloaded from the S3 URI of ``--code-archive``), extracts it to a temporary
directory, puts that directory first on ``sys.path`` and calls the entry point's
``main`` with the remaining arguments.

Standard library only (boto3 for ``--code-archive``, which Glue and EMR provide): it runs
before any of the project's code or dependencies can be imported.
"""

import importlib
import os
import sys
import tempfile
import zipfile

#: The module whose ``main(argv)`` runs the job.
ENTRY_MODULE = "lakehouse_assets.silver.job"
#: A file every code archive holds: it tells the archive from other zips on ``sys.path``.
ARCHIVE_MARKER = "resources/settings.py"
#: Where to download the archive from when it is not on ``sys.path`` (an s3:// URI).
ARCHIVE_OPTION = "--code-archive"


def _is_code_archive(path: str) -> bool:
    if not os.path.isfile(path) or not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return ARCHIVE_MARKER in archive.namelist()


def _candidates() -> list[str]:
    """Zips where Glue and Spark put ``--extra-py-files`` / ``--py-files``."""
    entries = list(sys.path) + os.environ.get("PYTHONPATH", "").split(os.pathsep)
    for directory in (os.getcwd(), os.path.dirname(os.path.abspath(__file__))):
        entries += [os.path.join(directory, name) for name in sorted(os.listdir(directory))]
    seen: list[str] = []
    for entry in entries:
        path = os.path.abspath(entry) if entry else ""
        if path.endswith(".zip") and path not in seen:
            seen.append(path)
    return seen


def _download(uri: str, directory: str) -> str:
    import boto3

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    target = os.path.join(directory, os.path.basename(key) or "code.zip")
    boto3.client("s3").download_file(bucket, key, target)
    return target


def _take_option(argv: list[str], name: str) -> tuple[str | None, list[str]]:
    """The value of ``name`` (``--name value`` or ``--name=value``) and argv without it."""
    rest: list[str] = []
    value = None
    index = 0
    while index < len(argv):
        argument = argv[index]
        if argument == name and index + 1 < len(argv):
            value, index = argv[index + 1], index + 2
            continue
        if argument.startswith(name + "="):
            value = argument.partition("=")[2]
        else:
            rest.append(argument)
        index += 1
    return value, rest


def prepare(argv: list[str]) -> tuple[str, list[str]]:
    """Extract the code archive and put it first on ``sys.path``.

    Returns the extracted directory and the arguments for the entry point.
    """
    uri, argv = _take_option(argv, ARCHIVE_OPTION)
    root = tempfile.mkdtemp(prefix="lakehouse-silver-")
    if uri is not None:
        archive = _download(uri, root) if uri.startswith("s3://") else os.path.abspath(uri)
    else:
        found = [path for path in _candidates() if _is_code_archive(path)]
        if not found:
            raise SystemExit(
                f"lakehouse silver job: no code archive (a zip holding {ARCHIVE_MARKER}) on "
                f"sys.path, in {os.getcwd()} or beside {__file__}; pass it with "
                f"--extra-py-files (Glue), --py-files (Spark) or {ARCHIVE_OPTION} s3://..."
            )
        archive = found[0]
    code = os.path.join(root, "code")
    with zipfile.ZipFile(archive) as opened:
        opened.extractall(code)
    # The zip stays importable otherwise; the extracted copy must win for every module.
    sys.path[:] = [code] + [entry for entry in sys.path if os.path.abspath(entry) != archive]
    print(f"lakehouse silver job: code from {archive} in {code}", file=sys.stderr, flush=True)
    return code, argv


def main(argv: list[str] | None = None) -> int | None:
    """Run the entry point's ``main`` from the extracted archive."""
    _, rest = prepare(list(sys.argv[1:] if argv is None else argv))
    entry = importlib.import_module(ENTRY_MODULE)
    code = entry.main(rest)
    return code if isinstance(code, int) else None


if __name__ == "__main__":
    sys.exit(main())
