from covex.cli.main import main

main()
