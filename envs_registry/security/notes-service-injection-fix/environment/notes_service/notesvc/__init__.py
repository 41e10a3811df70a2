"""notesvc - tiny multi-user notes service used by the support team."""
__version__ = "0.4.2"
