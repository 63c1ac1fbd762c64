"""The application: loads configs, wires adapters to ports and interprets the core's plans."""
