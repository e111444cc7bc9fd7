"""Reference data: counties, windows, service categories and service channels."""
