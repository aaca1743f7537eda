"""Workers: long-running loops beside the server (threads or processes of their own).

They sit above the service layer, as the server does: they open a service and act through it,
and nothing below them imports them.
"""
