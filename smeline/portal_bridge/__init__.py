"""The platform's members and enterprises, and the REST bridge to the portal."""
