push 17
push 5
mod         ; 2
push 6
push 7
mul         ; 42
add
print       ; 44
push -9
push 2
div
print       ; -4
