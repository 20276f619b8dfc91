"""Developer and operator tools: local mode, the redrive command, the diagram and the synth summary."""
