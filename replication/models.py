"""Replica Of models (sources, sync state) arrive with the control-plane issue."""
