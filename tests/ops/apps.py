"""Small apps for ``switchroom up``: one with HTTP only, one with an email desk and a page."""

from switchroom.worker.app import App

http_only = App()


@http_only.http("/")
async def hello(message, ctx):
    await ctx.respond("hello")


mail_desk = App()


@mail_desk.http("/")
async def desk(message, ctx):
    await ctx.respond("the help desk")


@mail_desk.email("help@acme.test")
async def ticket(message, ctx):
    await ctx.layer.send("test.tickets", {"subject": message.get("subject")})
