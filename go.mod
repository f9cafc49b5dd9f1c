module github.com/cocoon-go/cocoon

go 1.26.8
