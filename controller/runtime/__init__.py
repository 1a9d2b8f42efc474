"""The live daemon around the pure core: inputs, control loop, apply, publish."""
