"""A chat room answered over the web, email and Slack from one worker codebase."""
