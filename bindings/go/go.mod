module libkv.dev/kv

go 1.19
