"""bark-kedro datasets."""
