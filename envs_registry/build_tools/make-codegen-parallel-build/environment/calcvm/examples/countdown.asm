; prints 5 4 3 2 1
    PUSH 5      ; 0
    DUP         ; 1
    JZ 8        ; 2
    DUP         ; 3
    PRINT       ; 4
    PUSH 1      ; 5
    SUB         ; 6
    JMP 1       ; 7
    HALT        ; 8
