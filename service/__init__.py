"""The runnable service: config, CLI, supervision, demo and the DMP simulator."""
