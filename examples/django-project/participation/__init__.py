"""A participation bot in a Django project: the whole WhatsApp side is the app in
INSTALLED_APPS, one include() in urls.py and ANSWER_BACKEND naming `bot.answer`."""
