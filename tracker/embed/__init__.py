"""The embeddable progress bar: script, iframe page, SVG image, snippet builder."""
