"""The site's own chat: an embeddable widget and its live channel (docs/channels/widget.md)."""
