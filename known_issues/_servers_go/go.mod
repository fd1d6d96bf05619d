module kiservers

go 1.21
