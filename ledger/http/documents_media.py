"""The media type of each format a document is made in (the API's and the portal's)."""

MEDIA_TYPES = {"html": "text/html; charset=utf-8", "pdf": "application/pdf"}
