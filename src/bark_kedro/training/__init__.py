"""bark-kedro training."""
