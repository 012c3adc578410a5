"""The Workflow Builder step "Create a Close opportunity": inputs -> a submission -> completion."""
