"""Programs around the node: starting the installed node, the client that plays camera and planner, the demo."""
