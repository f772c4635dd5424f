"""Generation: inference twins primed with text, and sampling."""
