"""postdeck's engine: everything that is not UI."""
import logging

# The backends log under "postdeck.*". A process that has not routed them to a log file (the
# CLI, the console) must not have them printed on stderr by logging's last-resort handler: the
# operator gets one message, not a retry log. Workers and supervisors route them to their log.
logging.getLogger("postdeck").addHandler(logging.NullHandler())
