module github.com/onsi/ginkgo

go 1.14
