"""bark-kedro evaluation."""
