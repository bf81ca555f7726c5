from chatbot.cli import main

main(prog_name="chatbot")
