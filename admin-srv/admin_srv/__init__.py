"""admin_srv."""
