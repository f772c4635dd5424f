"""Text to token ids: corpus preparation, preprocessing, vocabularies, splits, the token store and cache."""
