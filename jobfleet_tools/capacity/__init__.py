"""Capacity you can see before you deploy: a scaling simulator on load traces and a cost estimate.

`python -m jobfleet_tools simulate --env NAME --trace FILE` and
`python -m jobfleet_tools cost --env NAME [--trace FILE]`; see docs/scaling.md.
"""
