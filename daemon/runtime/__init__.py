"""Process runtime: lifecycle, logging, systemd integration, status and control."""
