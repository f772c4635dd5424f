"""Finding NLTK data: download it when online, or say exactly how to install it."""

from __future__ import annotations

from toolkit.errors import ToolkitError


def installed(resource: str) -> bool:
    """Whether NLTK finds ``resource`` unpacked or as a zip file (how the downloader leaves it)."""
    import nltk  # imported when first needed: `toolkit --help` need not load NLTK and SciPy

    for name in (resource, f"{resource}.zip"):
        try:
            nltk.data.find(name)
            return True
        except LookupError:
            pass
    return False


def require(resource: str, package: str, download: bool = True) -> None:
    """Make sure ``resource`` (e.g. ``"corpora/stopwords"``) is installed.

    When it is missing and ``download`` is true, NLTK's downloader is tried once; when
    that fails too, the error names the command to run and the folders searched.
    """
    if installed(resource):
        return
    import nltk

    if download:
        try:
            if nltk.download(package, quiet=True, raise_on_error=True) and installed(resource):
                return
        except Exception:  # offline: URLError, ValueError, ... from the downloader
            pass
    searched = ", ".join(nltk.data.path)
    raise ToolkitError(
        f"NLTK data {resource!r} is not installed{' and could not be downloaded' if download else ''}. "
        f"Install it with: python -m nltk.downloader {package}  "
        f"(or set NLTK_DATA to a folder that holds {resource}). Searched: {searched}")
