package main

import (
	"fmt"
	"net/http"
	"os"
)

func handler(w http.ResponseWriter, r *http.Request) {
	powered := os.Getenv("POWERED_BY")
	if powered == "" {
		powered = "Moorage"
	}
	fmt.Fprintf(w, "Powered by %s\n", powered)
}

func main() {
	http.HandleFunc("/", handler)
	port := os.Getenv("PORT")
	if port == "" {
		port = "5000"
	}
	fmt.Printf("listening on %s...\n", port)
	if err := http.ListenAndServe(":"+port, nil); err != nil {
		panic(err)
	}
}
