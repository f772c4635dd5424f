"""Where the toolkit keeps downloaded corpora and cached token ids by default."""

USER_CACHE = "~/.cache/lstm-text-toolkit"
