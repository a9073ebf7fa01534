"""Circuits exchanged with other tools: the EAP-IG / MIB graph JSON (graph.py the
computational graph and its names, mib.py the file, circ_text.py the `.circ` side).
No torch: `seqcirc export` and `seqcirc import` read and write files only."""
