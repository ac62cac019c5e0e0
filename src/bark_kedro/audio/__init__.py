"""bark-kedro audio."""
