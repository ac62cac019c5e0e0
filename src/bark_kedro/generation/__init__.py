"""bark-kedro generation."""
