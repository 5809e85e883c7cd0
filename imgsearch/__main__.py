from imgsearch.cli.app import main

main()
