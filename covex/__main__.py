from covex.cli import main

main()
