"""The pages, one module per area; ROUTES is the whole table, in match order."""

from . import (
    auth,
    callbacks,
    console,
    contacts,
    dashboard,
    history,
    inbound,
    jobs,
    polls,
    reports,
    send,
    users,
)

ROUTES = [route for module in (auth, dashboard, send, history, jobs, reports, inbound, polls,
                               contacts, callbacks, users, console) for route in module.ROUTES]
